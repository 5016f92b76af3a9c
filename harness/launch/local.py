"""Run a suite on this machine: one subprocess per run (a crash or OOM takes down only that run), N at a time.

Finished runs are skipped, stale ones (computed by other code) set aside and recomputed, and runs another live
process trains are left to it (named by host/pid). The runs expected to take longest (``harness.launch.cost``)
start first. Workers die with this process whatever signal ends it, so no orphan trains on; their runs resume
from their checkpoints next time. While runs train, a progress line per run is printed at least every
``HEARTBEAT_S`` seconds; each finished run is logged to MLflow by this process.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.launch.outlook import SuiteClock, duration, training_left_s
from harness.launch.worker import LOCKED_EXIT, thread_environment
from harness.runs import DONE_STATES, RunRecord, lock_holder, prepare, read_json, run_dir, set_aside_stale, write_status
from harness.suite import RunSpec

HEARTBEAT_S = 20.0  # the longest the terminal stays silent while runs train
SHARED_FAILURES = 3  # the suite stops when its first this many runs all failed for one reason
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


@dataclass
class SuiteOutcome:
    """What a local suite run did, by run id."""

    skipped: dict[str, str] = field(default_factory=dict)  # already done: run id -> finished / diverged
    locked: dict[str, str] = field(default_factory=dict)  # trained by another process: run id -> host/pid
    set_aside: dict[str, Path] = field(default_factory=dict)  # stale runs: run id -> where the old run went
    states: dict[str, str] = field(default_factory=dict)  # runs trained now: run id -> final state
    reasons: dict[str, str] = field(default_factory=dict)  # failed runs: run id -> one-line reason
    aborted: str | None = None  # why the suite stopped before its end
    tracking_errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line of counts: runs trained now by state, then runs left alone and why."""
        parts = [f"{n} {state}" for state, n in sorted(Counter(self.states.values()).items())]
        parts += [f"{n} already {state}" for state, n in sorted(Counter(self.skipped.values()).items())]
        if self.locked:
            parts.append(f"{len(self.locked)} trained by another process")
        if self.set_aside:
            parts.append(f"{len(self.set_aside)} stale recomputed")
        return ", ".join(parts) or "no runs"


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


def failure_error(directory: Path) -> str:
    """Why a run failed or diverged: the error class and message the worker recorded (else its reason)."""
    status = RunRecord(directory).status
    return (status.get("error") or status.get("reason") or "").strip() or "no reason recorded"


def _die_with(parent: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child get SIGTERM when ``parent`` dies, even by SIGKILL (Linux)."""
    def setup() -> None:
        if _LIBC is not None:
            _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the death signal was armed
            os._exit(1)
    return setup


def _signals_exit() -> dict[int, object]:
    """Turn SIGTERM and SIGHUP into SystemExit in this process, so that the workers are stopped on the way out;
    returns the previous handlers."""
    def stop(signum: int, _frame) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():  # only the main thread receives signals
        return {}
    return {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGHUP)}


def _stop(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM a worker's process group (worker and its data loaders), then SIGKILL it after ``grace_s``."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_suite(specs: list[RunSpec], results_root: Path, jobs: int = 1, tracking_uri: str | None = None,
              data_root: str | None = None, suite_path: str | None = None, keep_stale: bool = False) -> SuiteOutcome:
    """Run every unfinished spec, ``jobs`` subprocesses at a time; returns what happened to each run."""
    outcome = SuiteOutcome()
    if tracking_uri is not None:
        from harness.tracking import ensure_store

        try:
            ensure_store(tracking_uri)
        except Exception as err:
            outcome.tracking_errors.append(f"tracking store {tracking_uri} unavailable: {err}")
            tracking_uri = None
    queue = []
    for spec in specs:
        holder = lock_holder(run_dir(results_root, spec))
        if holder:
            outcome.locked[spec.run_id] = holder
            print(f"skipped   {spec.run_id}: being trained by {holder}", flush=True)
            continue
        moved = None if keep_stale else set_aside_stale(results_root, spec)
        if moved:
            outcome.set_aside[spec.run_id] = moved
            print(f"stale     {spec.run_id}: computed by other code, moved to {moved}; recomputing", flush=True)
        directory = prepare(results_root, spec)
        state = RunRecord(directory).state
        if state in DONE_STATES:
            outcome.skipped[spec.run_id] = state
            _log(spec, directory, tracking_uri, suite_path, outcome)  # catches up runs MLflow missed
        else:
            queue.append((spec, directory))
    queue, costs = _longest_first(queue, jobs)
    running: list[tuple[RunSpec, Path, subprocess.Popen]] = []
    previous = _signals_exit()
    try:
        _drive(queue, running, SuiteClock(jobs, costs), data_root, tracking_uri, suite_path, outcome)
    finally:  # interrupted or stopped early: stop the workers; their runs resume from checkpoints next time
        for _, _, process in running:
            _stop(process)
        if outcome.aborted:
            _record_aborted(running, outcome)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return outcome


def _record_aborted(stopped: list[tuple[RunSpec, Path, subprocess.Popen]], outcome: SuiteOutcome) -> None:
    """Runs whose workers the suite's abort stopped are recorded ``interrupted`` with the abort's reason (one that
    ended on its own meanwhile keeps its own state), so that reports can say why they have no result."""
    for spec, directory, _ in stopped:
        state = RunRecord(directory).state
        if state in (*DONE_STATES, "failed"):
            outcome.states.setdefault(spec.run_id, state)
            continue
        reason = f"suite aborted because {outcome.aborted}"
        write_status(directory, "interrupted", reason=reason)
        outcome.states[spec.run_id] = "interrupted"
        outcome.reasons[spec.run_id] = reason.splitlines()[0]
        print(f"interrupted {spec.run_id}: {outcome.reasons[spec.run_id]}", flush=True)


Queue = list[tuple[RunSpec, Path]]


def _longest_first(queue: Queue, jobs: int) -> tuple[Queue, dict[str, float]]:
    """The queue by expected cost, highest first (equal costs in suite order): a long run started last would keep
    one worker busy while the others idle; and the costs by run id (for the suite's ETA). With no more runs than
    workers, the order cannot matter: no costs are computed."""
    if jobs < 2 or len(queue) <= jobs:
        return queue, {}
    from harness.launch.cost import expected_costs

    costs = expected_costs([spec for spec, _ in queue])
    ordered = [item for _, item in sorted(zip(costs, queue), key=lambda pair: -pair[0])]
    return ordered, {spec.run_id: cost for cost, (spec, _) in zip(costs, queue)}


def _start(spec: RunSpec, directory: Path, data_root: str | None) -> subprocess.Popen:
    """One worker in its own process group, its threads fixed by the run, dying with this process."""
    command = [sys.executable, "-m", "harness.launch.worker", str(directory)]
    if data_root:
        command += ["--data-root", data_root]
    with open(directory / "worker.log", "ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, process_group=0,
                                env={**os.environ, **thread_environment(spec.threads)},
                                preexec_fn=_die_with(os.getpid()))


def _drive(queue, running, clock: SuiteClock, data_root, tracking_uri, suite_path, outcome: SuiteOutcome) -> None:
    total, done, failures = len(queue), 0, []
    last_heartbeat = time.monotonic()
    while queue or running:
        _fill(queue, running, clock, data_root)
        time.sleep(0.2)
        if time.monotonic() - last_heartbeat >= HEARTBEAT_S:
            last_heartbeat = time.monotonic()
            _heartbeat(queue, running, clock, total)
        finished = []
        for item in list(running):
            spec, directory, process = item
            if process.poll() is None:
                continue
            running.remove(item)
            done += 1
            if process.returncode == LOCKED_EXIT:
                outcome.locked[spec.run_id] = lock_holder(directory) or "another process"
                print(f"[{done}/{total}] skipped   {spec.run_id}: being trained by {outcome.locked[spec.run_id]}",
                      flush=True)
                continue
            clock.finish(spec.run_id)  # a run left to another process says nothing about how long runs take
            _record(spec, directory, process, outcome, failures, f"[{done}/{total}]")
            finished.append((spec, directory))
            if _shared_failure(outcome, failures, total):
                queue.clear()
                break
        _fill(queue, running, clock, data_root)  # free workers start before MLflow logging, which takes seconds
        for spec, directory in finished:
            _log(spec, directory, tracking_uri, suite_path, outcome)
        if outcome.aborted:
            return


def _heartbeat(queue, running, clock: SuiteClock, total: int) -> None:
    """The progress line of each run that reports progress (one still building its model and data said
    'started' already), then the suite's line with its ETA."""
    for spec, directory, _ in running:
        line = progress_line(directory)
        if line:
            print(f"          {spec.run_id} {line}", flush=True)
    print("          " + clock.line(total, {spec.run_id: directory for spec, directory, _ in running},
                                    [spec.run_id for spec, _ in queue]), flush=True)


def _fill(queue, running, clock: SuiteClock, data_root: str | None) -> None:
    """Start queued runs while fewer than ``clock.jobs`` run."""
    while queue and len(running) < clock.jobs:
        spec, directory = queue.pop(0)
        running.append((spec, directory, _start(spec, directory, data_root)))
        clock.start(spec.run_id)
        print(f"started   {spec.run_id} {spec.model} {spec.dataset} T={spec.T} seed={spec.seed}", flush=True)


def _record(spec: RunSpec, directory: Path, process: subprocess.Popen, outcome: SuiteOutcome, failures: list[str],
            counter: str) -> None:
    """A finished worker's final state into ``outcome`` (a worker that died unrecorded failed), printed."""
    state = RunRecord(directory).state
    if process.returncode != 0 and state not in ("failed", "diverged"):
        write_status(directory, "failed", reason=f"worker exited with code {process.returncode}; "
                                                 f"see {directory / 'worker.log'}")
        state = "failed"
    outcome.states[spec.run_id] = state
    if state == "failed":
        failures.append(failure_error(directory))
        outcome.reasons[spec.run_id] = failures[-1].splitlines()[0]
        print(f"{counter} failed {spec.run_id}: {outcome.reasons[spec.run_id]}", flush=True)
    else:
        reason = f": {failure_error(directory).splitlines()[0]}" if state == "diverged" else ""
        print(f"{counter} {_describe(spec, directory, state)}{reason}", flush=True)


def _shared_failure(outcome: SuiteOutcome, failures: list[str], total: int) -> bool:
    """Whether the suite's first runs all failed for one reason (a missing dataset, say): then every run would,
    so the suite stops with that reason instead of failing its runs one by one."""
    finished = list(outcome.states.values())
    if total <= SHARED_FAILURES or len(finished) != SHARED_FAILURES or finished.count("failed") < SHARED_FAILURES:
        return False
    if len(set(failures)) != 1:
        return False
    outcome.aborted = f"the first {SHARED_FAILURES} runs all failed with {failures[0]}"
    return True


def progress_line(directory: Path) -> str | None:
    """A running run's progress from ``progress.json`` (written by the worker): epoch, step, loss and ETA; None
    before its first report (it is building its model and data)."""
    progress = read_json(directory / "progress.json")
    if not progress:
        return None
    epochs = RunRecord(directory).config.get("resolved", {}).get("total_epochs")
    text = f"epoch {progress['epoch'] + 1}/{epochs or '?'} step {progress['position']}/{progress['total']}"
    if "loss" in progress.get("stats", {}):
        text += f" loss={progress['stats']['loss']:.4g}"
    left = training_left_s(directory)
    if left is not None:
        text += f" eta {duration(left)} (training only)"
    age = time.time() - progress["time"]
    if age > HEARTBEAT_S:
        text += f" (evaluating or checkpointing for {duration(age)})"
    return text
