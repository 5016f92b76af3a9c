"""MLflow tracking: run directories in, one MLflow run per run id out, idempotently.

Run directories are the record of truth; MLflow is where people browse. ``log_run_dir`` skips a run
whose content hash is already logged and replaces the MLflow run when the directory changed, so
``collect`` can be repeated at will. Tracking never costs a run:

- ``ensure_store`` creates and migrates a sqlite store once, under a file lock, before anything else opens it;
- logging one run id holds a lock in its run directory, so any number of processes leave one MLflow run per
  run id and suite (and ``collect`` removes duplicates older versions left behind);
- a logged MLflow run is complete or absent: it is created with its tags, then gets its params, metrics and
  content-hash tag in batches (``log_batch``, within MLflow's limits) and its artifacts, and its end status last,
  so a ``collect`` cut off midway (SIGKILL) leaves a RUNNING run, which the next ``collect`` replaces and
  reports leave out (``complete``);
- a run directory is read once per ``collect`` (``RunContent``); the store is searched once for every logged run
  (a sqlite store in one SQL query, ``harness.tracking_sqlite``), then, under the run's lock, for that run id only;
- an unreachable server fails fast (bounded HTTP retries and timeout): ``TrackingUnavailable``, one line;
- a malformed run directory is skipped with one warning naming the file (``MalformedRecord``);
- imported runs (``<results>/imported/<site>/<run_id>/``) are logged like local ones, tagged with their source (the
  site; ``local`` for local runs), ``imported``, their verification verdict and date (``harness.bundle.origin``); a
  local and an imported run of one run id are two MLflow runs, and re-importing or re-verifying a run changes its
  content hash, so ``collect`` replaces its MLflow run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from harness.bundle import BundleError
from harness.bundle.origin import (LOCAL_SOURCE, ORIGIN_NAME, VERIFICATION_NAME, RunSource, imported_runs,
                                   run_source, source_label)
from harness.collect_index import HASHED, HASHED_IF_PRESENT, CollectIndex, Logged, stamp
from harness.runs import STATUS_NAME, RunRecord, all_records, live_state, parse_jsonl, parse_status, read_bytes
from harness.suite import RunSpec
from harness.tracking_sqlite import SQLITE, LoggedRun, LoggedRuns, active_experiments, logged_hashes, search_runs_frame

TAG = "spikebench."
# Energy per image in two conventions (``final.json["energy"]``): ``paper`` (MSViT Eq. 18, the papers' way) and
# ``ops`` (every operation as executed); NeuroBench's metrics (``final.json["neurobench"]``).
ENERGY_METRICS = {"paper": {"energy_mj": "energy_mj", "first_layer_macs": "first_layer_macs", "sops": "sops",
                            "firing_rate": "firing_rate", "dense_sops": "dense_sops"},
                  "ops": {"energy_mj": "ops_energy_mj", "macs": "ops_macs", "acs": "ops_acs",
                          "firing_rate": "ops_firing_rate"}}
# Eval-only runs (a weights file evaluated, nothing trained): top-1 at batch 1 and its difference from the
# official batch's, the number of evaluated images, the images NeuroBench's metrics were measured on.
EVAL_ONLY_METRICS = ("top1_batch1", "top1_batch_diff", "neurobench_images")
NEUROBENCH_METRICS = ("footprint_bytes", "connection_sparsity", "activation_sparsity", "effective_macs",
                      "effective_acs")
FINAL_METRICS = ("top1", "top5", "best_top1", "best_epoch", "params",
                 *ENERGY_METRICS["paper"].values(), *ENERGY_METRICS["ops"].values(), "energy_images",
                 *NEUROBENCH_METRICS, "eval_batch", "eval_images",
                 "train_seconds", "train_device_hours", "eval_img_per_s", "peak_memory_mb", *EVAL_ONLY_METRICS)
# Where a run's results come from and whether they were re-checked here (``harness.bundle.origin.RunSource``).
SOURCE_TAGS = ("source", "imported", "verified", "verified_date", "verified_images", "disagreements")
TAG_NAMES = ("run_id", "suite", "family", "model", "dataset", "T", "seed", "variant", "recipe", "state",
             "git_commit", "torch", "cuda", "host", "device", "slurm_job_id", "command", "content_hash", "reason",
             "batch_dependent", "code_fingerprint", "weights_sha256", *SOURCE_TAGS)
ARTIFACTS = ("spec.json", "final.json", "config.json", "metrics.jsonl", "energy.json", "firing.json", "firing.md",
             ORIGIN_NAME, VERIFICATION_NAME)
LOGGED_STATES = ("finished", "failed", "diverged")
RUN_FILES = ("spec.json", STATUS_NAME, "config.json", "final.json")  # JSON objects, each checked by ``RunContent``
ENDED_STATUSES = ("FINISHED", "FAILED")  # what ``_log_locked`` ends a logged run with
# MLflow's limits on one ``log_batch`` call (REST API docs, "Log Batch"): 1000 metrics, 100 params, 100 tags,
# 1000 entities in all
BATCH_METRICS, BATCH_PARAMS, BATCH_TAGS, BATCH_ENTITIES = 1000, 100, 100, 1000
# An unreachable server costs seconds, not MLflow's default of 7 retries with exponential backoff (minutes).
HTTP_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


class TrackingUnavailable(RuntimeError):
    """The tracking store cannot be reached or opened (the message is one line)."""


class MalformedRecord(ValueError):
    """A run directory holds a file that cannot be read as what it should be (the message names it)."""


def default_uri(results_root: Path) -> str:
    return f"{SQLITE}{Path(results_root).resolve() / 'mlflow.db'}"


def _client(uri: str):
    for name, value in HTTP_SETTINGS.items():  # read by MLflow at each request; the user's settings win
        os.environ.setdefault(name, value)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if needed), held for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300] if text else ''}"


def ensure_store(uri: str) -> None:
    """Create and migrate the tracking store once, before any parallel work touches it: a sqlite store under
    a lock beside its file (processes opening a fresh one at once would corrupt its migrations); a server is
    checked to answer. Raises ``TrackingUnavailable`` (one line) when it cannot."""
    try:
        if uri.startswith(SQLITE):
            database = Path(uri[len(SQLITE):])
            if database.exists() and not os.access(database.parent, os.W_OK):  # read-only: nothing to migrate
                _client(uri).search_experiments(max_results=1)
                return
            with file_lock(database.with_name(database.name + ".lock")):
                _client(uri).search_experiments(max_results=1)
        else:
            _client(uri).search_experiments(max_results=1)
    except Exception as err:  # any failure of the store's client means: not usable from here
        raise TrackingUnavailable(f"tracking store {uri} unavailable ({_one_line(err)})") from err


@dataclass
class RunContent:
    """A run directory as ``collect`` logs it, each file read once: the bytes its content hash covers (``HASHED``,
    ``HASHED_IF_PRESENT``), its JSON files parsed (``RUN_FILES``; {} for an absent one), its validated spec, state
    and source. ``read`` raises ``MalformedRecord`` naming a file that cannot be read as what it should be."""

    dir: Path
    raw: dict[str, bytes | None]
    documents: dict[str, dict[str, Any]]
    spec: RunSpec
    state: str
    origin: RunSource = field(repr=False)

    @classmethod
    def read(cls, directory: Path) -> RunContent:
        from pydantic import ValidationError

        directory = Path(directory)
        raw = {name: read_bytes(directory / name) for name in {*HASHED, *HASHED_IF_PRESENT, *RUN_FILES}}
        documents = {name: _json_object(directory / name, raw[name]) for name in RUN_FILES}
        try:
            spec = RunSpec.model_validate(documents["spec.json"])
        except ValidationError as err:
            raise MalformedRecord(f"{directory / 'spec.json'}: not a run spec ({_one_line(err)})") from None
        try:
            origin = run_source(directory, raw)
        except BundleError as err:
            raise MalformedRecord(str(err)) from None
        state = live_state(parse_status(raw[STATUS_NAME]), directory)
        return cls(directory, raw, documents, spec, state, origin)

    @cached_property
    def content_hash(self) -> str:
        """Hash of everything the directory contributes to MLflow; an imported or verified run's ``origin.json`` and
        ``verification.json`` count only when present (so the hashes of runs logged before they existed stay)."""
        digest = hashlib.sha256()
        for name in HASHED:
            digest.update(name.encode() + (self.raw[name] if self.raw[name] is not None else b"-"))
        for name in HASHED_IF_PRESENT:
            if self.raw[name] is not None:
                digest.update(name.encode() + self.raw[name])
        digest.update(self.state.encode())
        return digest.hexdigest()[:16]

    @property
    def config(self) -> dict[str, Any]:
        return self.documents["config.json"]

    @property
    def final(self) -> dict[str, Any]:
        return self.documents["final.json"]

    @property
    def status(self) -> dict[str, Any]:
        return self.documents[STATUS_NAME]

    @cached_property
    def epochs(self) -> list[dict[str, Any]]:
        """The epoch records of ``metrics.jsonl`` (``harness.runs.parse_jsonl``: a malformed line warns once)."""
        return parse_jsonl(self.raw["metrics.jsonl"], self.dir / "metrics.jsonl")

    @property
    def key(self) -> tuple[str, str]:
        """(run id, source label): which MLflow runs of an experiment are this directory's."""
        return self.spec.run_id, source_label(self.origin.source, self.origin.imported)


def _json_object(path: Path, raw: bytes | None) -> dict[str, Any]:
    """The JSON object a run file's bytes hold ({} for an absent file); ``MalformedRecord`` naming it otherwise."""
    if raw is None:
        return {}
    try:
        content = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise MalformedRecord(f"{path}: not valid JSON ({_one_line(err)})") from None
    if not isinstance(content, dict):
        raise MalformedRecord(f"{path}: expected a JSON object, found {type(content).__name__}")
    return content


def flatten_params(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    """``value`` as MLflow params: dotted keys under ``prefix``, lists as JSON, everything else as ``str``."""
    if isinstance(value, dict):
        for key, inner in value.items():
            flatten_params(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return out


def reproduce_command(suite_path: str, spec) -> str:
    """The command that re-runs exactly this run id (budget knobs included, since they are part of it)."""
    knobs = [f"--{flag} {value}" for flag, value in (("epochs", spec.epochs), ("limit-batches", spec.limit_batches),
                                                      ("subset", spec.subset)) if value is not None]
    return " ".join(["python -m harness run", shlex.quote(suite_path), *knobs, "--only", spec.run_id])


def _tags(content: RunContent, suite: str, suite_path: str) -> dict[str, str]:
    """The MLflow tags of a run directory, prefixed, but its content hash (``_log_locked`` logs it with the params)."""
    import zoo

    spec, status, config = content.spec, content.status, content.config
    provenance = _block(config, "provenance")
    versions = _block(provenance, "versions")
    tags = {
        "run_id": spec.run_id, "suite": suite, "family": zoo.model_card(spec.model).family,
        "model": spec.model, "dataset": spec.dataset, "T": str(spec.T), "seed": str(spec.seed),
        "variant": spec.variant or "", "recipe": spec.recipe, "state": content.state,
        "git_commit": str(_block(provenance, "git").get("commit")), "torch": str(versions.get("torch")),
        "cuda": str(versions.get("cuda")), "host": str(provenance.get("host", status.get("host"))),
        "device": str(provenance.get("gpu") or "cpu"), "slurm_job_id": str(status.get("slurm_job_id") or ""),
        "command": reproduce_command(suite_path, spec),
    }
    final = content.final
    reason = status.get("reason") or (final.get("message") if content.state == "diverged" else None)
    if reason:
        tags["reason"] = str(reason)[:4000]
    if isinstance(final.get("batch_dependent"), bool):
        tags["batch_dependent"] = str(final["batch_dependent"]).lower()
    if provenance.get("code_fingerprint"):
        tags["code_fingerprint"] = str(provenance["code_fingerprint"])
    if spec.eval_only:
        tags["weights_sha256"] = str(spec.weights_sha256)
    tags.update(source_tags(content.origin))
    return {TAG + k: v for k, v in tags.items()}


def source_tags(origin: RunSource) -> dict[str, str]:
    """The ``SOURCE_TAGS`` of a run directory's source (``harness.bundle.origin.run_source``), unprefixed; those
    without a value (an unverified run's date) are left out."""
    values = {"source": origin.source, "imported": str(origin.imported).lower(), "verified": origin.verdict,
              "verified_date": origin.date, "verified_images": origin.images, "disagreements": origin.disagreements}
    return {k: str(v) for k, v in values.items() if v is not None}


def _params(content: RunContent) -> dict[str, str]:
    """The MLflow params of a run directory: its spec, its resolved recipe and, for a run in fast mode, the
    settings fast mode chose on its device (``config.json`` ``resolved.fast``: ``fast.case``, ``fast.precision``,
    ...; absent for an exact run)."""
    params = flatten_params("spec", content.spec.model_dump(mode="json"), {})
    flatten_params("recipe", content.config.get("recipe", {}), params)
    fast = _block(content.config, "resolved").get("fast")
    if isinstance(fast, dict) and fast:
        flatten_params("fast", fast, params)
    return params


def logged_source(tags: dict[str, str]) -> tuple[str, bool]:
    """The source and imported flag of a logged MLflow run from its tags; a run logged before sources were
    tagged is a local one."""
    return tags.get(TAG + "source", LOCAL_SOURCE), tags.get(TAG + "imported") == "true"


def logged_label(tags: dict[str, str]) -> str:
    """The source label (``harness.bundle.origin.source_label``) of a logged MLflow run from its tags."""
    return source_label(*logged_source(tags))


def _energy(final: dict[str, Any]) -> dict[str, Any]:
    """Energy metrics from final.json's ``energy`` block; a block without conventions (written before they
    existed) counted every operation as executed: it is the ``ops`` convention."""
    energy = _block(final, "energy")
    conventions = energy if "ops" in energy or "paper" in energy else {"ops": energy}
    values = {name: _block(conventions, convention).get(key)
              for convention, keys in ENERGY_METRICS.items() for key, name in keys.items()}
    values["energy_images"] = energy.get("images")
    return values


def final_metrics(final: dict[str, Any], world_size: int = 1, source: str | None = None) -> dict[str, float]:
    """The headline numbers of an engine ``final.json`` (absent ones are left out, never zero-filled).
    ``top1``/``top5`` are the last epoch's; ``best_top1`` at ``best_epoch`` is the best's; ``eval_images`` the
    images an evaluation covered (the n of a top-1's sampling error). With ``source``
    (the file's path), a value of the wrong type is reported in one warning naming it and left out."""
    last, neurobench = _block(final, "last"), _block(final, "neurobench")
    values = {
        "top1": last.get("eval_top1"), "top5": last.get("eval_top5"), "best_top1": final.get("best_top1"),
        "best_epoch": final.get("best_epoch"), "params": final.get("params"), **_energy(final),
        **{name: neurobench.get(name) for name in NEUROBENCH_METRICS}, "eval_batch": final.get("eval_batch"),
        "eval_images": last.get("eval_images", final.get("eval_images")),
        "train_seconds": final.get("wall_time_s"), "eval_img_per_s": last.get("eval_img_s"),
        "peak_memory_mb": final.get("peak_memory_mb"), **{name: final.get(name) for name in EVAL_ONLY_METRICS},
    }
    if _number(final.get("wall_time_s")):
        values["train_device_hours"] = final["wall_time_s"] * world_size / 3600
    wrong = sorted(k for k, v in values.items() if v is not None and not _number(v))
    if wrong and source:
        warnings.warn(f"{source}: {', '.join(f'{k}={values[k]!r}' for k in wrong)} not numbers; left out",
                      stacklevel=2)
    return {k: float(v) for k, v in values.items() if _number(v)}


def _block(final: dict[str, Any], name: str) -> dict[str, Any]:
    value = final.get(name)
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metrics(content: RunContent) -> list:
    """Each epoch record's numbers at its epoch (step), then the final numbers at step 0."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = []
    for row in content.epochs:
        if not (isinstance(row.get("epoch"), int) and not isinstance(row["epoch"], bool)):
            warnings.warn(f"{content.dir / 'metrics.jsonl'}: a record without an integer epoch "
                          f"({str(row)[:100]}); skipped", stacklevel=3)
            continue
        metrics += [Metric(k, float(v), now, row["epoch"]) for k, v in row.items()
                    if k not in ("epoch", "step") and _number(v)]
    world = _block(content.config, "resolved").get("world_size", 1)
    metrics += [Metric(k, v, now, 0) for k, v in
                final_metrics(content.final, world if _number(world) else 1,
                              source=str(content.dir / "final.json")).items()]
    return metrics


def batches(metrics: list, params: list, tags: list) -> Iterator[tuple[list, list, list]]:
    """``(metrics, params, tags)`` in as few ``log_batch`` calls as MLflow's limits allow (``BATCH_*``), in order:
    the tags (the content hash) come last."""
    entities = [*(("m", m) for m in metrics), *(("p", p) for p in params), *(("t", t) for t in tags)]
    limits = {"m": BATCH_METRICS, "p": BATCH_PARAMS, "t": BATCH_TAGS}
    batch: dict[str, list] = {"m": [], "p": [], "t": []}
    for kind, entity in entities:
        if len(batch[kind]) == limits[kind] or sum(map(len, batch.values())) == BATCH_ENTITIES:
            yield batch["m"], batch["p"], batch["t"]
            batch = {"m": [], "p": [], "t": []}
        batch[kind].append(entity)
    if any(batch.values()):
        yield batch["m"], batch["p"], batch["t"]


def check_record(record: RunRecord) -> None:
    """Raise ``MalformedRecord`` naming the file when a run directory's JSON files or spec cannot be read."""
    RunContent.read(record.dir)


class Logging(NamedTuple):
    """What ``log_run_dir`` did with a run directory, and the content hash it read (None for a skipped run)."""

    outcome: str
    content_hash: str | None


class _Store:
    """A tracking store as ``collect`` writes to it: its client (None: a sqlite store that does not exist yet, for a
    dry run), the experiment of each suite looked up once, and the MLflow runs of one run id."""

    def __init__(self, uri: str, client) -> None:
        self.uri, self.client = uri, client
        self._experiments: dict[str, str | None] = {}

    def experiment_id(self, suite: str, create: bool = True) -> str | None:
        """The id of the suite's experiment, created (when ``create``) with its artifacts beside a sqlite store."""
        if self._experiments.get(suite) is None:
            self._experiments[suite] = self._lookup(suite, create)
        return self._experiments[suite]

    def _lookup(self, suite: str, create: bool) -> str | None:
        name = f"spikebench/{suite}"
        experiment = None if self.client is None else self.client.get_experiment_by_name(name)
        if experiment is not None or not create:
            return None if experiment is None else experiment.experiment_id
        location = None
        if self.uri.startswith(SQLITE):
            location = (Path(self.uri[len(SQLITE):]).parent / "mlartifacts" / suite).resolve().as_uri()
        from mlflow.exceptions import MlflowException

        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:  # another process created it meanwhile
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def runs_of(self, suite: str, experiment_id: str, content: RunContent) -> list[LoggedRun]:
        """The active MLflow runs of ``content``'s run id and source in the suite's experiment, oldest first: one
        SQL query on a sqlite store, else a search through MLflow."""
        run_id, label = content.key
        found = logged_hashes(self.uri, TAG, logged_label, f"spikebench/{suite}", run_id)
        if found is not None:
            return found.get((f"spikebench/{suite}", run_id, label), [])
        runs = self.client.search_runs([experiment_id], filter_string=f"tags.`{TAG}run_id` = '{run_id}'",
                                       order_by=["attributes.start_time ASC"])
        return [LoggedRun(run.info.run_id, run.info.status, run.data.tags.get(TAG + "content_hash"))
                for run in runs if logged_label(run.data.tags) == label]


def _current(runs: list[LoggedRun], content_hash: str) -> list[LoggedRun]:
    """The runs logged to the end from exactly this content."""
    return [run for run in runs if complete(run.status, run.content_hash) and run.content_hash == content_hash]


def log_run_dir(directory: Path, uri: str, suite: str | None = None, suite_path: str | None = None,
                client=None) -> Logging:
    """Log one run directory; returns its ``Logging``: 'logged', 'unchanged', 'merged' (already logged, duplicates
    removed) or 'skipped' (not in a final state), with the content hash read. Holds the run directory's tracking
    lock, so concurrent loggers leave exactly one MLflow run per run id and suite. Raises ``MalformedRecord`` for
    an unreadable directory.

    ``suite``/``suite_path`` name the suite it is logged under (default: the suite that created the run).
    """
    content = RunContent.read(directory)
    if content.state not in LOGGED_STATES:
        return Logging("skipped", None)
    return _log_content(content, _Store(uri, client or _client(uri)), suite, suite_path)


def _log_content(content: RunContent, store: _Store, suite: str | None, suite_path: str | None = None) -> Logging:
    """``log_run_dir`` of a run directory already read, in a final state."""
    with file_lock(content.dir / "tracking.lock"):
        outcome = _log_locked(content, store, suite or content.spec.suite, suite_path)
    return Logging(outcome, content.content_hash)


def planned_outcome(directory: Path, suite: str | None, client) -> Logging:
    """What ``log_run_dir`` would return for ``directory``, found without writing anything (no lock, no MLflow
    change), for ``collect --dry-run`` on a store or results directory that may be read-only; ``client`` None:
    the store does not exist yet."""
    content = RunContent.read(directory)
    if content.state not in LOGGED_STATES:
        return Logging("skipped", None)
    return _plan_content(content, _Store("", client), suite)


def _plan_content(content: RunContent, store: _Store, suite: str | None) -> Logging:
    """``planned_outcome`` of a run directory already read, in a final state."""
    suite = suite or content.spec.suite
    experiment_id = store.experiment_id(suite, create=False)
    if experiment_id is None:
        return Logging("logged", content.content_hash)
    existing = store.runs_of(suite, experiment_id, content)
    if _current(existing, content.content_hash):
        return Logging("merged" if len(existing) > 1 else "unchanged", content.content_hash)
    return Logging("logged", content.content_hash)


def _log_locked(content: RunContent, store: _Store, suite: str, suite_path: str | None) -> str:
    from mlflow.entities import Param, RunTag
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    client = store.client
    experiment_id = store.experiment_id(suite)
    existing = store.runs_of(suite, experiment_id, content)
    current = _current(existing, content.content_hash)
    if current:
        extra = [run for run in existing if run.mlflow_run_id != current[0].mlflow_run_id]
        for run in extra:
            client.delete_run(run.mlflow_run_id)
        return "merged" if extra else "unchanged"
    for run in existing:
        client.delete_run(run.mlflow_run_id)
    run = client.create_run(experiment_id, run_name=content.spec.run_id,
                            tags=_tags(content, suite, suite_path or f"suites/{suite}.yaml"))
    params = [Param(k[:250], v[:6000]) for k, v in _params(content).items()]
    hash_tag = [RunTag(TAG + "content_hash", content.content_hash)]
    for metrics, param_batch, tags in batches(_metrics(content), params, hash_tag):
        client.log_batch(run.info.run_id, metrics=metrics, params=param_batch, tags=tags)
    artifacts = get_artifact_repository(run.info.artifact_uri, tracking_uri=store.uri)
    for name in ARTIFACTS:  # straight to the run's artifact store: no lookup of the run per file
        if (content.dir / name).exists():
            artifacts.log_artifact(str(content.dir / name))
    client.set_terminated(run.info.run_id, status="FINISHED" if content.state == "finished" else "FAILED")
    return "logged"  # the end status is written last: from here on the run is complete


def complete(status: str | None, content_hash: Any) -> bool:
    """Whether an MLflow run (its status and content-hash tag) was logged to the end: a run still RUNNING or
    without the hash was cut off (or is being written) and counts as absent."""
    return status in ENDED_STATUSES and isinstance(content_hash, str) and bool(content_hash)


def collect(results_root: Path, uri: str, run_ids: set[str] | None = None, suite: str | None = None,
            dry_run: bool = False) -> dict[str, int]:
    """Log every run directory, local and imported (``run_dirs``; or those in ``run_ids``), into MLflow; returns
    counts per outcome. A malformed run directory is skipped with one warning naming the file ("malformed").
    ``dry_run``: the counts of what would be done, with nothing written (a sqlite store that does not exist yet is
    not created: all would log). Incremental: a run directory unchanged since the last collect into this store,
    whose MLflow run the store still holds, is counted "unchanged" without being read (``harness.collect_index``)."""
    counts: dict[str, int] = {"logged": 0, "unchanged": 0, "merged": 0, "skipped": 0, "malformed": 0}
    root = Path(results_root)
    names = run_dirs(root)
    chosen = [name for name in names if run_ids is None or Path(name).name in run_ids]
    index = CollectIndex.load(root, uri, suite)
    absent = uri.startswith(SQLITE) and not Path(uri[len(SQLITE):]).exists()
    found = None if absent else logged_hashes(uri, TAG, logged_label)  # a sqlite store: read without MLflow
    client = None
    if found is None and not absent:
        ensure_store(uri)
        client = _client(uri)
        found = _searched_hashes(client)
    settled = index.settled(chosen, _complete_hashes(found or {}))
    pending = [name for name in chosen if name not in settled]
    if pending and client is None and not (dry_run and absent):
        ensure_store(uri)
        client = _client(uri)
    store = _Store(uri, client)
    for name in pending:
        counts[_collect_one(root, name, suite, store, index, dry_run)] += 1
    counts["unchanged"] += len(settled)
    if not dry_run:
        index.save(set(names))
    return counts


def run_dirs(results_root: Path) -> list[str]:
    """The run directories ``collect`` logs, relative to ``results_root``: the local ones (``runs/<run_id>``), then
    the imported ones (``imported/<site>/<run_id>``)."""
    root = Path(results_root)
    local = [record.dir for record in all_records(root)]
    return [path.relative_to(root).as_posix() for path in (*local, *imported_runs(root))]


def _collect_one(root: Path, name: str, suite: str | None, store: _Store, index: CollectIndex, dry_run: bool) -> str:
    """Log (or, ``dry_run``, plan) the run directory ``root / name`` and note it in ``index``; "malformed" with one
    warning."""
    directory = root / name
    stamps = stamp(directory)  # before reading: a write from here on changes the stamps the next collect sees
    try:
        content = RunContent.read(directory)
    except MalformedRecord as err:
        warnings.warn(f"skipped {err}", stacklevel=3)
        return "malformed"
    if content.state not in LOGGED_STATES:
        done = Logging("skipped", None)
    else:
        done = _plan_content(content, store, suite) if dry_run else _log_content(content, store, suite)
    run_id, label = content.key
    index.record(name, stamps, done.outcome, (f"spikebench/{suite or content.spec.suite}", run_id, label),
                 done.content_hash)
    return done.outcome


def _searched_hashes(client) -> LoggedRuns:
    """``harness.tracking_sqlite.logged_hashes`` for any store, through MLflow's paged search."""
    found: LoggedRuns = {}
    for experiment in client.search_experiments():
        if not experiment.name.startswith("spikebench/"):
            continue
        token = None
        while True:
            page = client.search_runs([experiment.experiment_id], max_results=1000, page_token=token,
                                      order_by=["attributes.start_time ASC"])
            for run in page:
                key = (experiment.name, run.data.tags.get(TAG + "run_id"), logged_label(run.data.tags))
                found.setdefault(key, []).append(LoggedRun(run.info.run_id, run.info.status,
                                                           run.data.tags.get(TAG + "content_hash")))
            token = page.token
            if not token:
                break
    return found


def _complete_hashes(found: LoggedRuns) -> Logged:
    """(experiment, run id, source label) -> the content hash of each of its MLflow runs (None for one not logged
    to the end)."""
    return {key: [run.content_hash if complete(run.status, run.content_hash) else None for run in runs]
            for key, runs in found.items()}


def runs_frame(uri: str, suite: str | None = None):
    """All logged runs as a DataFrame: tag names without the prefix, final metrics, the logged params (as
    ``params.<key>``), mlflow_run_id and start_time."""
    import pandas as pd

    def wanted(name: str) -> bool:
        return name.startswith("spikebench/") and (suite is None or name == f"spikebench/{suite}")

    experiments = active_experiments(uri, wanted)  # a sqlite store: read without MLflow's client
    if experiments is None:
        ensure_store(uri)
        experiments = [e.experiment_id for e in _client(uri).search_experiments() if wanted(e.name)]
    columns = [*TAG_NAMES, *FINAL_METRICS]
    if not experiments:
        return pd.DataFrame(columns=[*columns, "mlflow_run_id", "start_time"])
    raw = _complete_runs(_search_runs(uri, experiments))
    data = {"mlflow_run_id": raw["run_id"], "start_time": raw["start_time"]}
    for name in columns:
        source = f"tags.{TAG}{name}" if name in TAG_NAMES else f"metrics.{name}"
        data[name] = raw[source] if source in raw else pd.Series(None, index=raw.index, dtype=object)
    params = [c for c in raw.columns if c.startswith("params.")]
    return pd.concat([pd.DataFrame(data), raw[params]], axis=1)


def _search_runs(uri: str, experiment_ids: list[str]):
    """``mlflow.search_runs``'s frame of the experiments: read from the tables of a sqlite store in a few queries
    (``harness.tracking_sqlite``: seconds less per 1,000 runs), else through MLflow."""
    frame = search_runs_frame(uri, experiment_ids)
    if frame is not None:
        return frame
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_ids=experiment_ids, output_format="pandas")


def _complete_runs(raw):
    """The rows of ``mlflow.search_runs`` that were logged to the end; each cut-off run is left out with one
    warning naming it (``collect`` replaces it)."""
    hashes = raw.get(f"tags.{TAG}content_hash", [None] * len(raw))
    kept = [complete(status, content_hash) for status, content_hash in zip(raw.get("status", []), hashes)]
    run_ids = raw.get(f"tags.{TAG}run_id", [None] * len(raw))
    for mlflow_run, run_id, ok in zip(raw.get("run_id", []), run_ids, kept):
        if not ok:
            warnings.warn(f"MLflow run {mlflow_run} (run id {run_id}) was not logged to the end (a cut-off or "
                          f"running collect); left out: `harness collect` replaces it", stacklevel=3)
    return raw[kept] if len(raw) else raw
