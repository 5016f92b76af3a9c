"""Which local runs a command means (a suite's, or run ids), and the files of one run a bundle carries."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from harness.bundle import BundleError
from harness.engine.checkpoint import CheckpointStore
from harness.engine.predictions import META_NAME
from harness.names import name_problem
from harness.runs import DONE_STATES, RunRecord, all_records, read_json

SUITE_SUFFIXES = (".yaml", ".yml")


def select_runs(root: Path, targets: list[str]) -> tuple[list[RunRecord], list[str]]:
    """The finished (or diverged) runs under ``root/runs`` that ``targets`` name: a suite file stands for every
    run of that suite, anything else is a run id. Returns the runs and one line for each run left out."""
    chosen: dict[str, RunRecord] = {}
    for target in targets:
        for record in _runs_of(root, target):
            chosen.setdefault(record.dir.name, record)
    done = [record for record in chosen.values() if record.state in DONE_STATES]
    skipped = [f"{record.dir.name}: {record.state}, not finished; left out" for record in chosen.values()
               if record.state not in DONE_STATES]
    if not done:
        raise BundleError(f"{', '.join(targets)}: no finished run under {root / 'runs'}")
    return done, skipped


def _runs_of(root: Path, target: str) -> list[RunRecord]:
    if target.endswith(SUITE_SUFFIXES):
        from harness.suite import SuiteError, load_suite

        try:
            name = load_suite(target).name
        except SuiteError as err:
            raise BundleError(str(err)) from None
        runs = [record for record in all_records(root) if _suite_of(record) == name]
        if not runs:
            raise BundleError(f"{target}: suite {name!r} has no run under {root / 'runs'}")
        return runs
    problem = name_problem(target)
    if problem or not (root / "runs" / target / "spec.json").is_file():
        raise BundleError(f"{target}: expected a suite file (.yaml) or the id of a run under {root / 'runs'}")
    return [RunRecord(root / "runs" / target)]


def _suite_of(record: RunRecord) -> str | None:
    """The suite a run belongs to; None (with a warning naming the file) when its spec cannot be read."""
    try:
        return record.spec.suite
    except ValueError as err:
        warnings.warn(f"{record.dir / 'spec.json'}: not a readable run spec ({str(err).splitlines()[0][:120]}); "
                      f"skipped", stacklevel=3)
        return None


def checkpoint_file(record: RunRecord) -> Path | None:
    """The weights that gave the run's recorded predictions: the checkpoint ``predictions.json`` names (else the
    newest) for a trained run, the evaluated weights file for an eval-only run; None when it is gone."""
    if record.spec.eval_only:
        path = (record.final or {}).get("weights", {}).get("file")
        return Path(path) if path and Path(path).is_file() else None
    meta = read_json(record.dir / META_NAME) or {}
    store = CheckpointStore(record.dir / "checkpoints", keep_last=1)
    if meta.get("checkpoint"):
        path = store.dir / meta["checkpoint"]
        return path if path.is_file() else None
    paths = store.paths()
    return paths[-1] if paths else None


def environment(config: dict[str, Any]) -> dict[str, Any]:
    """Where the run was computed, from its ``config.json``: packages, device, driver, platform, host, threads."""
    provenance = config.get("provenance", {})
    resolved = config.get("resolved", {})
    return {"packages": provenance.get("versions"), "device": resolved.get("device"), "gpu": provenance.get("gpu"),
            "driver": provenance.get("driver"), "platform": provenance.get("platform"),
            "host": provenance.get("host"), "threads": provenance.get("threads")}
