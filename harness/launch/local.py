"""Run a suite on this machine: one subprocess per run (a crash or OOM takes down only that run), N at a time.

Finished runs are skipped, stale ones (computed by other code) set aside and recomputed, and runs another live
process trains are left to it (named by host/pid). The runs expected to take longest (``harness.launch.cost``)
start first. Workers die with this process whatever signal ends it, so no orphan trains on; their runs resume
from their checkpoints next time. On SIGTERM/SIGHUP every worker is signalled at once and shares one grace period
(``SHUTDOWN_GRACE_S``, then SIGKILL), and this process leaves without interpreter teardown: a scheduler's grace
before SIGKILL (SLURM's KillWait, 30 s by default) holds for any ``--jobs``. A worker killed by a signal (SIGKILL,
the OOM killer) is ``interrupted`` and retried up to ``retries`` times. A write the storage refuses (full disk,
read-only) in a worker stops the suite: the other workers are stopped with the reason recorded and the error is
raised as an ``OSError`` naming the path. While runs train, a progress line per run is printed at least every
``HEARTBEAT_S`` seconds; each finished run is logged to MLflow by this process.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
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
from typing import Callable, Iterator

from harness.atomicfile import os_error_behind
from harness.launch.outlook import SuiteClock, duration, training_left_s
from harness.launch.worker import LOCKED_EXIT, MESSAGE_FD_VARIABLE, STORAGE_EXIT, thread_environment
from harness.runs import (CORRUPT, DONE_STATES, STORAGE_ERRNOS, RunRecord, describe_os_error, lock_holder, prepare,
                          read_json, run_dir, set_aside_corrupt_status, set_aside_stale, write_status)
from harness.suite import RunSpec

HEARTBEAT_S = 20.0  # the longest the terminal stays silent while runs train
SHUTDOWN_GRACE_S = 8.0  # shared by all workers between SIGTERM and SIGKILL: stays inside SLURM's 30 s KillWait
SQLITE_STORAGE_ERRORS = {"database or disk is full": errno.ENOSPC, "attempt to write a readonly database": errno.EROFS}
MLFLOW_DB_LOGGER = "mlflow.store.db.utils"
SHARED_FAILURES = 3  # the suite stops when its first this many runs all failed for one reason
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


@dataclass
class SuiteOutcome:
    """What a local suite run did, by run id."""

    skipped: dict[str, str] = field(default_factory=dict)  # already done: run id -> finished / diverged
    locked: dict[str, str] = field(default_factory=dict)  # trained by another process: run id -> host/pid
    set_aside: dict[str, Path] = field(default_factory=dict)  # stale runs: run id -> where the old run went
    corrupt: dict[str, Path] = field(default_factory=dict)  # corrupt status.json: run id -> where it was moved
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
        if self.corrupt:
            parts.append(f"{len(self.corrupt)} with a corrupt status recomputed")
        return ", ".join(parts) or "no runs"


@contextlib.contextmanager
def _silenced(name: str) -> Iterator[None]:
    """No records from logger ``name`` inside the block (errors we report ourselves, in one line)."""
    logger = logging.getLogger(name)
    previous, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = previous


def _storage_error_behind(err: BaseException, tracking_uri: str) -> OSError | None:
    """The storage error behind a failed MLflow write: an OSError in the chain, or sqlite's own words for a full
    or read-only database (it names no errno), as an OSError naming the database file."""
    from harness.tracking import SQLITE

    cause = os_error_behind(err)
    if cause is not None and cause.errno in STORAGE_ERRNOS:
        return cause
    text = " ".join(str(e) for e in (err, err.__cause__, err.__context__) if e is not None)
    for words, number in SQLITE_STORAGE_ERRORS.items():
        if words in text and tracking_uri.startswith(SQLITE):
            return OSError(number, words, tracking_uri[len(SQLITE):])
    return None


def _log(spec: RunSpec, directory: Path, tracking_uri: str | None, suite_path: str | None,
         outcome: SuiteOutcome) -> None:
    """Log a run to MLflow; a store that is down is reported, never fatal (collect catches up); a store whose
    storage refuses writes stops the suite like any refused write (``OSError``)."""
    if tracking_uri is None:
        return
    from harness.tracking import log_run_dir

    try:
        with _silenced(MLFLOW_DB_LOGGER):  # it logs a database error with a traceback before raising it
            log_run_dir(directory, tracking_uri, suite=spec.suite, suite_path=suite_path)
    except Exception as err:  # an unreachable server must not fail the run; the run dir keeps everything
        storage = _storage_error_behind(err, tracking_uri)
        if storage is not None:
            raise storage from err
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


class LauncherSignalled(SystemExit):
    """This process got SIGTERM or SIGHUP: its workers are stopped, then it exits ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


@dataclass
class Worker:
    """A running worker: its run, process and the read end of its message pipe."""

    spec: RunSpec
    directory: Path
    process: subprocess.Popen
    messages: int


def _signals_exit() -> dict[int, object]:
    """Turn SIGTERM and SIGHUP into ``LauncherSignalled`` in this process, so that the workers are stopped on the
    way out; returns the previous handlers."""
    def stop(signum: int, _frame) -> None:
        raise LauncherSignalled(signum)

    if threading.current_thread() is not threading.main_thread():  # only the main thread receives signals
        return {}
    return {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGHUP)}


def _signal_group(worker: Worker, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.process.pid, signum)


def stop_workers(workers: list[Worker], reason: str, grace_s: float = SHUTDOWN_GRACE_S) -> list[Worker]:
    """SIGTERM every worker's process group (worker and data loaders) at once, SIGKILL those still alive after one
    shared ``grace_s``, then record each run that did not end on its own ``interrupted`` with ``reason`` where the
    storage lets us; returns the stopped workers (``workers`` is emptied)."""
    for worker in workers:
        _signal_group(worker, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for worker in workers:
        try:
            worker.process.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            _signal_group(worker, signal.SIGKILL)
            worker.process.wait()
    for worker in workers:
        os.close(worker.messages)
        with contextlib.suppress(OSError):
            if RunRecord(worker.directory).state not in (*DONE_STATES, "failed"):
                write_status(worker.directory, "interrupted", reason=reason)
    stopped = list(workers)
    workers.clear()
    return stopped


def _stop_reason(err: BaseException) -> str:
    """Why the launcher stopped its workers, as recorded in their runs' status."""
    if isinstance(err, LauncherSignalled):
        return f"the launcher got {signal.Signals(err.signum).name}"
    if isinstance(err, KeyboardInterrupt):
        return "the launcher was interrupted"
    if isinstance(err, OSError):
        return f"a write failed: {describe_os_error(err)}"
    return f"the launcher stopped ({type(err).__name__}: {err})"


def _exit_now(code: int) -> None:
    """Leave without interpreter teardown (seconds with torch and MLflow loaded): the workers are stopped and
    every state is written."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def run_suite(specs: list[RunSpec], results_root: Path, jobs: int = 1, tracking_uri: str | None = None,
              data_root: str | None = None, suite_path: str | None = None, keep_stale: bool = False,
              retries: int = 1) -> SuiteOutcome:
    """Run every unfinished spec, ``jobs`` subprocesses at a time, retrying a run whose worker a signal killed up to
    ``retries`` times; returns what happened to each run. Raises ``OSError`` when the storage refuses a write
    (after stopping the other workers); on SIGTERM/SIGHUP stops the workers and exits the process."""
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
        _set_aside_corrupt(spec, directory, outcome)
        state = RunRecord(directory).state
        if state in DONE_STATES:
            outcome.skipped[spec.run_id] = state
            _log(spec, directory, tracking_uri, suite_path, outcome)  # catches up runs MLflow missed
        else:
            queue.append((spec, directory))
    queue, costs = _longest_first(queue, jobs)
    running: list[Worker] = []
    previous = _signals_exit()
    try:
        _drive(queue, running, SuiteClock(jobs, costs), data_root, tracking_uri, suite_path, outcome, retries)
        if outcome.aborted:
            _record_aborted(stop_workers(running, f"suite aborted because {outcome.aborted}"), outcome)
    except BaseException as err:  # interrupted or stopped early: their runs resume from checkpoints next time
        stop_workers(running, f"stopped because {_stop_reason(err)}; a rerun resumes from the last checkpoint")
        if isinstance(err, LauncherSignalled):
            _exit_now(err.code)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return outcome


def _record_aborted(stopped: list[Worker], outcome: SuiteOutcome) -> None:
    """The runs whose workers the suite's abort stopped (recorded ``interrupted`` with the abort's reason, so that
    reports can say why they have no result; one that ended on its own meanwhile keeps its own state)."""
    for worker in stopped:
        record = RunRecord(worker.directory)
        outcome.states[worker.spec.run_id] = record.state
        if record.state == "interrupted":
            outcome.reasons[worker.spec.run_id] = record.status["reason"].splitlines()[0]
            print(f"interrupted {worker.spec.run_id}: {outcome.reasons[worker.spec.run_id]}", flush=True)


def _set_aside_corrupt(spec: RunSpec, directory: Path, outcome: SuiteOutcome) -> None:
    """A run whose status.json is corrupt: say why, move the file aside (kept) and let the run be recomputed."""
    status = RunRecord(directory).status
    if status["state"] != CORRUPT:
        return
    moved = set_aside_corrupt_status(directory)
    if moved:
        outcome.corrupt[spec.run_id] = moved
        print(f"corrupt   {spec.run_id}: {status['reason']}; moved to {moved}; recomputing", flush=True)


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


def _start(spec: RunSpec, directory: Path, data_root: str | None) -> Worker:
    """One worker in its own process group, its threads fixed by the run, dying with this process, with a pipe
    it reports a refused write through (the run's own files may be where the storage refuses writes)."""
    command = [sys.executable, "-m", "harness.launch.worker", str(directory)]
    if data_root:
        command += ["--data-root", data_root]
    read_end, write_end = os.pipe()
    environment = {**os.environ, **thread_environment(spec.threads), MESSAGE_FD_VARIABLE: str(write_end)}
    try:
        with open(directory / "worker.log", "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, process_group=0,
                                       env=environment, pass_fds=(write_end,), preexec_fn=_die_with(os.getpid()))
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return Worker(spec, directory, process, read_end)


def _storage_failure(worker: Worker) -> OSError:
    """The refused write a worker that exited ``STORAGE_EXIT`` reported through its pipe, recorded as the reason
    its run is interrupted where the storage lets us."""
    os.set_blocking(worker.messages, False)
    try:
        message = json.loads(os.read(worker.messages, 65536).decode().splitlines()[0])
        error = OSError(int(message["errno"]), str(message["strerror"]), message["filename"])
    except (OSError, ValueError, IndexError, KeyError, TypeError):
        error = OSError(errno.EIO, f"run {worker.spec.run_id}: a write failed and its worker could not say which",
                        str(worker.directory / "worker.log"))
    finally:
        os.close(worker.messages)
    with contextlib.suppress(OSError):
        write_status(worker.directory, "interrupted", reason=f"{describe_os_error(error)}; a rerun resumes from the "
                                                             "last checkpoint once the storage accepts writes")
    return error


def _signal_death(worker: Worker) -> str | None:
    """The name of the signal that ended a worker (uncaught, or caught by the worker's own handler), else None."""
    code = worker.process.returncode
    if code < 0:
        number = -code
    elif code > 128 and RunRecord(worker.directory).state == "interrupted":
        number = code - 128
    else:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def _drive(queue, running, clock: SuiteClock, data_root, tracking_uri, suite_path, outcome: SuiteOutcome,
           retries: int) -> None:
    total, done, failures, attempts = len(queue), 0, [], Counter()
    last_heartbeat = time.monotonic()
    while queue or running:
        _fill(queue, running, clock, data_root)
        time.sleep(0.2)
        if time.monotonic() - last_heartbeat >= HEARTBEAT_S:
            last_heartbeat = time.monotonic()
            _heartbeat(queue, running, clock, total)
        finished = []
        for worker in list(running):
            if worker.process.poll() is None:
                continue
            running.remove(worker)
            if worker.process.returncode == STORAGE_EXIT:
                raise _storage_failure(worker)
            os.close(worker.messages)
            spec, directory = worker.spec, worker.directory
            killed = _signal_death(worker)
            if killed and attempts[spec.run_id] < retries:
                attempts[spec.run_id] += 1
                _retry(worker, killed, f"{attempts[spec.run_id]} of {retries}", queue)
                continue
            done += 1
            if worker.process.returncode == LOCKED_EXIT:
                outcome.locked[spec.run_id] = lock_holder(directory) or "another process"
                print(f"[{done}/{total}] skipped   {spec.run_id}: being trained by {outcome.locked[spec.run_id]}",
                      flush=True)
                continue
            clock.finish(spec.run_id)  # a run left to another process says nothing about how long runs take
            if killed:
                _give_up(worker, killed, attempts[spec.run_id] + 1, retries)
            _record(spec, directory, worker.process, outcome, failures, f"[{done}/{total}]", bool(killed))
            finished.append((spec, directory))
            if _shared_failure(outcome, failures, total):
                queue.clear()
                break
        _fill(queue, running, clock, data_root)  # free workers start before MLflow logging, which takes seconds
        for spec, directory in finished:
            _log(spec, directory, tracking_uri, suite_path, outcome)
        if outcome.aborted:
            return


def _retry(worker: Worker, killed: str, attempt: str, queue: list) -> None:
    """Put a run whose worker a signal killed back at the head of the queue; it resumes from its checkpoint."""
    write_status(worker.directory, "interrupted", reason=f"worker killed by {killed}; retry {attempt}")
    print(f"interrupted {worker.spec.run_id}: worker killed by {killed}; retrying from its last checkpoint "
          f"({attempt})", flush=True)
    queue.insert(0, (worker.spec, worker.directory))


def _give_up(worker: Worker, killed: str, tries: int, retries: int) -> None:
    """Record why a run whose worker a signal killed is not retried again (it stays resumable)."""
    write_status(worker.directory, "interrupted", reason=(
        f"worker killed by {killed} on {tries} attempt(s), not retried further (--retries {retries}); a rerun "
        f"resumes from the last checkpoint; see {worker.directory / 'worker.log'}"))


def _heartbeat(queue, running: list[Worker], clock: SuiteClock, total: int) -> None:
    """The progress line of each run that reports progress (one still building its model and data said
    'started' already), then the suite's line with its ETA."""
    for worker in running:
        line = progress_line(worker.directory)
        if line:
            print(f"          {worker.spec.run_id} {line}", flush=True)
    print("          " + clock.line(total, {worker.spec.run_id: worker.directory for worker in running},
                                    [spec.run_id for spec, _ in queue]), flush=True)


def _fill(queue, running, clock: SuiteClock, data_root: str | None) -> None:
    """Start queued runs while fewer than ``clock.jobs`` run."""
    while queue and len(running) < clock.jobs:
        spec, directory = queue.pop(0)
        running.append(_start(spec, directory, data_root))
        clock.start(spec.run_id)
        print(f"started   {spec.run_id} {spec.model} {spec.dataset} T={spec.T} seed={spec.seed}", flush=True)


def _record(spec: RunSpec, directory: Path, process: subprocess.Popen, outcome: SuiteOutcome, failures: list[str],
            counter: str, killed: bool) -> None:
    """A finished worker's final state into ``outcome`` (one that died unrecorded, not by a signal, failed),
    printed."""
    state = RunRecord(directory).state
    if process.returncode != 0 and not killed and state not in ("failed", "diverged"):
        write_status(directory, "failed", reason=f"worker exited with code {process.returncode}; "
                                                 f"see {directory / 'worker.log'}")
        state = "failed"
    outcome.states[spec.run_id] = state
    if state in ("failed", "interrupted"):
        outcome.reasons[spec.run_id] = failure_error(directory).splitlines()[0]
        if state == "failed":
            failures.append(failure_error(directory))
        print(f"{counter} {state} {spec.run_id}: {outcome.reasons[spec.run_id]}", flush=True)
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
