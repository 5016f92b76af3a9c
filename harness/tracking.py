"""MLflow tracking: run directories in, one MLflow run per run id out, idempotently.

Run directories are the record of truth; MLflow is where people browse. ``log_run_dir`` skips a run
whose content hash is already logged and replaces the MLflow run when the directory changed, so
``collect`` can be repeated at will. Only one process (the launcher's parent, or ``harness collect``)
writes to a sqlite store, after ``ensure_store`` created and migrated it.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from pathlib import Path
from typing import Any

from harness.runs import RunRecord, all_records

TAG = "spikebench."
# Energy per image in two conventions (``final.json["energy"]``): ``paper`` (MSViT Eq. 18, the papers' way) and
# ``ops`` (every operation as executed); NeuroBench's metrics (``final.json["neurobench"]``).
ENERGY_METRICS = {"paper": {"energy_mj": "energy_mj", "first_layer_macs": "first_layer_macs", "sops": "sops",
                            "firing_rate": "firing_rate"},
                  "ops": {"energy_mj": "ops_energy_mj", "macs": "ops_macs", "acs": "ops_acs",
                          "firing_rate": "ops_firing_rate"}}
NEUROBENCH_METRICS = ("footprint_bytes", "connection_sparsity", "activation_sparsity", "effective_macs",
                      "effective_acs")
FINAL_METRICS = ("top1", "top5", "best_top1", "best_epoch", "params",
                 *ENERGY_METRICS["paper"].values(), *ENERGY_METRICS["ops"].values(), "energy_images",
                 *NEUROBENCH_METRICS, "eval_batch",
                 "train_seconds", "train_device_hours", "eval_img_per_s", "peak_memory_mb")
TAG_NAMES = ("run_id", "suite", "family", "model", "dataset", "T", "seed", "variant", "recipe", "state",
             "git_commit", "torch", "cuda", "host", "device", "slurm_job_id", "command", "content_hash", "reason",
             "batch_dependent", "code_fingerprint")
ARTIFACTS = ("spec.json", "final.json", "config.json", "metrics.jsonl", "energy.json")
LOGGED_STATES = ("finished", "failed", "diverged")


def default_uri(results_root: Path) -> str:
    return f"sqlite:///{Path(results_root).resolve() / 'mlflow.db'}"


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_store(uri: str) -> None:
    """Create and migrate the tracking store once, before any parallel work touches it."""
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    _client(uri).search_experiments(max_results=1)


def _experiment_id(client, suite: str, uri: str) -> str:
    name = f"spikebench/{suite}"
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts" / suite).resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


def content_hash(record: RunRecord) -> str:
    """Hash of everything a run directory contributes to MLflow."""
    digest = hashlib.sha256()
    for name in ("spec.json", "final.json", "metrics.jsonl", "config.json"):
        path = record.dir / name
        digest.update(name.encode() + (path.read_bytes() if path.exists() else b"-"))
    digest.update(record.state.encode())
    return digest.hexdigest()[:16]


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return out


def reproduce_command(suite_path: str, spec) -> str:
    """The command that re-runs exactly this run id (budget knobs included, since they are part of it)."""
    knobs = [f"--{flag} {value}" for flag, value in (("epochs", spec.epochs), ("limit-batches", spec.limit_batches),
                                                      ("subset", spec.subset)) if value is not None]
    return " ".join(["python -m harness run", shlex.quote(suite_path), *knobs, "--only", spec.run_id])


def _tags(record: RunRecord, config: dict[str, Any], suite: str, suite_path: str, chash: str) -> dict[str, str]:
    import zoo

    spec, status = record.spec, record.status
    provenance = config.get("provenance", {})
    versions = provenance.get("versions", {})
    tags = {
        "run_id": spec.run_id, "suite": suite, "family": zoo.model_card(spec.model).family,
        "model": spec.model, "dataset": spec.dataset, "T": str(spec.T), "seed": str(spec.seed),
        "variant": spec.variant or "", "recipe": spec.recipe, "state": record.state,
        "git_commit": str(provenance.get("git", {}).get("commit")), "torch": str(versions.get("torch")),
        "cuda": str(versions.get("cuda")), "host": str(provenance.get("host", status.get("host"))),
        "device": str(provenance.get("gpu") or "cpu"), "slurm_job_id": str(status.get("slurm_job_id") or ""),
        "command": reproduce_command(suite_path, spec), "content_hash": chash,
    }
    final = record.final or {}
    reason = status.get("reason") or (final.get("message") if record.state == "diverged" else None)
    if reason:
        tags["reason"] = str(reason)[:4000]
    if isinstance(final.get("batch_dependent"), bool):
        tags["batch_dependent"] = str(final["batch_dependent"]).lower()
    if provenance.get("code_fingerprint"):
        tags["code_fingerprint"] = str(provenance["code_fingerprint"])
    return {TAG + k: v for k, v in tags.items()}


def _energy(final: dict[str, Any]) -> dict[str, Any]:
    """Energy metrics from final.json's ``energy`` block; a block without conventions (written before they
    existed) counted every operation as executed: it is the ``ops`` convention."""
    energy = final.get("energy") or {}
    conventions = energy if "ops" in energy or "paper" in energy else {"ops": energy}
    values = {name: (conventions.get(convention) or {}).get(key)
              for convention, keys in ENERGY_METRICS.items() for key, name in keys.items()}
    values["energy_images"] = energy.get("images")
    return values


def final_metrics(final: dict[str, Any], world_size: int = 1) -> dict[str, float]:
    """The headline numbers of an engine ``final.json`` (absent or non-numeric ones are left out, never
    zero-filled). ``top1``/``top5`` are the last epoch's; ``best_top1`` at ``best_epoch`` is the best's."""
    last, neurobench = final.get("last") or {}, final.get("neurobench") or {}
    values = {
        "top1": last.get("eval_top1"), "top5": last.get("eval_top5"), "best_top1": final.get("best_top1"),
        "best_epoch": final.get("best_epoch"), "params": final.get("params"), **_energy(final),
        **{name: neurobench.get(name) for name in NEUROBENCH_METRICS}, "eval_batch": final.get("eval_batch"),
        "train_seconds": final.get("wall_time_s"), "eval_img_per_s": last.get("eval_img_s"),
        "peak_memory_mb": final.get("peak_memory_mb"),
    }
    if _number(final.get("wall_time_s")):
        values["train_device_hours"] = final["wall_time_s"] * world_size / 3600
    return {k: float(v) for k, v in values.items() if _number(v)}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metrics(record: RunRecord, config: dict[str, Any]) -> list:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = []
    for row in record.epochs:
        epoch = int(row["epoch"])
        metrics += [Metric(k, float(v), now, epoch) for k, v in row.items()
                    if k not in ("epoch", "step") and isinstance(v, (int, float))]
    world = config.get("resolved", {}).get("world_size", 1)
    metrics += [Metric(k, v, now, 0) for k, v in final_metrics(record.final or {}, world).items()]
    return metrics


def log_run_dir(directory: Path, uri: str, suite: str | None = None, suite_path: str | None = None,
                client=None) -> str:
    """Log one run directory; returns 'logged', 'unchanged' or 'skipped' (not in a final state).

    ``suite``/``suite_path`` name the suite it is logged under (default: the suite that created the run).
    """
    from mlflow.entities import Param

    record = RunRecord(directory)
    if record.state not in LOGGED_STATES:
        return "skipped"
    client = client or _client(uri)
    spec = record.spec
    suite = suite or spec.suite
    experiment_id = _experiment_id(client, suite, uri)
    chash = content_hash(record)
    existing = client.search_runs([experiment_id], filter_string=f"tags.`{TAG}run_id` = '{spec.run_id}'")
    if any(run.data.tags.get(TAG + "content_hash") == chash for run in existing):
        return "unchanged"
    for run in existing:
        client.delete_run(run.info.run_id)
    config = record.config
    tags = _tags(record, config, suite, suite_path or f"suites/{suite}.yaml", chash)
    run = client.create_run(experiment_id, run_name=spec.run_id, tags=tags)
    params = _flatten("spec", spec.model_dump(mode="json"), {})
    params.update(_flatten("recipe", config.get("recipe", {}), {}))
    param_list = [Param(k[:250], v[:6000]) for k, v in params.items()]
    metric_list = _metrics(record, config)
    for start in range(0, max(len(param_list), len(metric_list)), 100):
        client.log_batch(run.info.run_id, metrics=metric_list[start:start + 100],
                         params=param_list[start:start + 100])
    for name in ARTIFACTS:
        if (record.dir / name).exists():
            client.log_artifact(run.info.run_id, str(record.dir / name))
    client.set_terminated(run.info.run_id, status="FINISHED" if record.state == "finished" else "FAILED")
    return "logged"


def collect(results_root: Path, uri: str, run_ids: set[str] | None = None, suite: str | None = None) -> dict[str, int]:
    """Log every run directory (or those in ``run_ids``) into MLflow; returns counts per outcome."""
    ensure_store(uri)
    client = _client(uri)
    counts: dict[str, int] = {"logged": 0, "unchanged": 0, "skipped": 0}
    for record in all_records(results_root):
        if run_ids is None or record.dir.name in run_ids:
            counts[log_run_dir(record.dir, uri, suite=suite, client=client)] += 1
    return counts


def runs_frame(uri: str, suite: str | None = None):
    """All logged runs as a DataFrame: tag names without the prefix, final metrics, the logged params (as
    ``params.<key>``), mlflow_run_id and start_time."""
    import mlflow
    import pandas as pd

    client = _client(uri)
    experiments = [e.experiment_id for e in client.search_experiments()
                   if e.name.startswith("spikebench/") and (suite is None or e.name == f"spikebench/{suite}")]
    columns = [*TAG_NAMES, *FINAL_METRICS]
    if not experiments:
        return pd.DataFrame(columns=[*columns, "mlflow_run_id", "start_time"])
    mlflow.set_tracking_uri(uri)
    raw = mlflow.search_runs(experiment_ids=experiments, output_format="pandas")
    frame = pd.DataFrame({"mlflow_run_id": raw["run_id"], "start_time": raw["start_time"]})
    for name in columns:
        source = f"tags.{TAG}{name}" if name in TAG_NAMES else f"metrics.{name}"
        frame[name] = raw[source] if source in raw else None
    params = [c for c in raw.columns if c.startswith("params.")]
    return pd.concat([frame, raw[params]], axis=1)
