"""Run a suite on this machine: one subprocess per run (a crash or OOM takes down only that run),
N at a time, finished runs skipped, each finished run logged to MLflow by this parent process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from harness.runs import DONE_STATES, RunRecord, prepare, write_status
from harness.suite import RunSpec


@dataclass
class SuiteOutcome:
    """What a local suite run did, by run id."""

    skipped: list[str] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)
    tracking_errors: list[str] = field(default_factory=list)


def _log(spec: RunSpec, directory: Path, tracking_uri: str | None, suite_path: str | None,
         outcome: SuiteOutcome) -> None:
    """Log a run to MLflow; a store that is down is reported, never fatal (collect catches up)."""
    if tracking_uri is None:
        return
    from harness.tracking import log_run_dir

    try:
        log_run_dir(directory, tracking_uri, suite=spec.suite, suite_path=suite_path)
    except Exception as err:  # an unreachable server must not fail the run; the run dir keeps everything
        message = f"{spec.run_id}: MLflow logging failed ({type(err).__name__}: {err}); run `harness collect` later"
        warnings.warn(message, stacklevel=2)
        outcome.tracking_errors.append(message)


def _describe(spec: RunSpec, directory: Path, state: str) -> str:
    from harness.tracking import final_metrics

    final = final_metrics(RunRecord(directory).final or {})
    top1 = f" top1={final['top1']:.2f}" if "top1" in final else ""
    return f"{state:9s} {spec.run_id} {spec.model} {spec.dataset} T={spec.T} seed={spec.seed}{top1}"


def run_suite(specs: list[RunSpec], results_root: Path, jobs: int = 1, tracking_uri: str | None = None,
              data_root: str | None = None, threads: int | None = None,
              suite_path: str | None = None) -> SuiteOutcome:
    """Run every unfinished spec, ``jobs`` subprocesses at a time; returns what happened to each run."""
    outcome = SuiteOutcome()
    if tracking_uri is not None:
        from harness.tracking import ensure_store

        try:
            ensure_store(tracking_uri)
        except Exception as err:
            outcome.tracking_errors.append(f"tracking store {tracking_uri} unavailable: {err}")
            tracking_uri = None
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, jobs))
    queue = []
    for spec in specs:
        directory = prepare(results_root, spec)
        if RunRecord(directory).state in DONE_STATES:
            outcome.skipped.append(spec.run_id)
            _log(spec, directory, tracking_uri, suite_path, outcome)  # catches up runs MLflow missed
        else:
            queue.append((spec, directory))
    running: list[tuple[RunSpec, Path, subprocess.Popen]] = []
    try:
        _drive(queue, running, jobs, threads, data_root, tracking_uri, suite_path, outcome)
    finally:  # interrupted: stop the children; their runs resume from checkpoints next time
        for _, _, process in running:
            process.terminate()
        for _, _, process in running:
            process.wait()
    return outcome


def _drive(queue, running, jobs, threads, data_root, tracking_uri, suite_path, outcome: SuiteOutcome) -> None:
    total, done = len(queue), 0
    while queue or running:
        while queue and len(running) < jobs:
            spec, directory = queue.pop(0)
            command = [sys.executable, "-m", "harness.launch.worker", str(directory), "--threads", str(threads)]
            if data_root:
                command += ["--data-root", data_root]
            log = open(directory / "worker.log", "ab")
            running.append((spec, directory, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)))
            log.close()
            print(f"started   {spec.run_id} {spec.model} {spec.dataset} T={spec.T} seed={spec.seed}", flush=True)
        time.sleep(0.2)
        for item in list(running):
            spec, directory, process = item
            if process.poll() is None:
                continue
            running.remove(item)
            done += 1
            state = RunRecord(directory).state
            if process.returncode != 0 and state not in ("failed", "diverged"):
                write_status(directory, "failed", reason=f"worker exited with code {process.returncode}; "
                                                         f"see {directory / 'worker.log'}")
                state = "failed"
            outcome.states[spec.run_id] = state
            print(f"[{done}/{total}] {_describe(spec, directory, state)}", flush=True)
            _log(spec, directory, tracking_uri, suite_path, outcome)
