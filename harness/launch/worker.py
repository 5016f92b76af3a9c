"""Run ONE run to its end in this process: the unit a local subprocess or a SLURM job executes.

    python -m harness.launch.worker RUN_DIR [--data-root DIR]

The worker holds the run directory's lock while it trains (one writer per run: a run another live process
trains is left alone, exit code ``LOCKED_EXIT``), fixes its CPU threads to the run's own count, resumes from
the last checkpoint when one exists and records its state in ``status.json``; a failure's traceback goes to
stderr (``worker.log`` under the local launcher). The worker never talks to MLflow: the launcher (or
``harness collect``) logs the run directory.

Run as a program, the worker stops at once on SIGTERM, SIGHUP or SIGINT: its checkpoints are written atomically,
so the last one is safe as it stands; it records the run ``interrupted``, removes its half-written temporary
files and leaves with ``os._exit`` (interpreter teardown with torch loaded takes seconds a scheduler's grace
period does not have). A write the storage refuses (full disk, quota, read-only) is not the run's fault: the
worker records it where it can, names the path and errno on stderr and in the message pipe the launcher may
pass (``MESSAGE_FD_VARIABLE``), and exits ``STORAGE_EXIT``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path

from harness.atomicfile import remove_temp_files
from harness.runs import (DONE_STATES, STORAGE_ERRNOS, RunLock, RunRecord, describe_os_error, lock_holder, prepare,
                          tail_lines, write_status)
from harness.suite import RunSpec

LOCKED_EXIT = 75  # the run is being trained by another live process (EX_TEMPFAIL)
STORAGE_EXIT = 74  # the storage refused a write (EX_IOERR); the run resumes once it accepts writes again
MESSAGE_FD_VARIABLE = "SPIKEBENCH_MESSAGE_FD"  # a pipe the launcher reads a storage error from (JSON, one line)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_training: RunLock | None = None  # the lock of the run this process trains, while it trains


class RunLockedError(RuntimeError):
    """Another live process holds the run's lock; the message names it (host/pid)."""


def train_spec(spec: RunSpec, data_root: str | None = None):
    """The engine's TrainSpec for a run spec (budget knobs map onto both splits; an eval-only run's weights file is
    found under ``data_root``, the default data directory when None)."""
    from harness.engine import TrainSpec

    weights = {}
    if spec.eval_only:
        from harness.data.catalog import resolve_data_root
        from harness.weights.locate import resolve_location

        path = resolve_location(spec.weights_file, resolve_data_root(data_root))
        weights = {"weights": str(path), "weights_sha256": spec.weights_sha256}
    return TrainSpec(
        model=spec.model, dataset=spec.dataset, recipe=spec.recipe, data_root=data_root, T=spec.T,
        seed=spec.seed, overrides=spec.recipe_overrides, model_kwargs=spec.overrides,
        dataset_options=spec.data_options, epochs=spec.epochs, train_subset=spec.subset,
        eval_subset=spec.subset, limit_train_batches=spec.limit_batches, limit_eval_batches=spec.limit_batches,
        energy_images=spec.energy_images, **weights,
    )


def thread_environment(threads: int) -> dict[str, str]:
    """The environment variables that fix OpenMP/MKL/OpenBLAS to ``threads`` (set before a worker starts)."""
    return {name: str(threads) for name in THREAD_VARIABLES}


def use_threads(threads: int) -> None:
    """Fix this process's CPU parallelism to the run's thread count, whatever launched it: the number of
    threads changes the order of floating-point sums, hence the numbers."""
    import torch

    os.environ.update(thread_environment(threads))
    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError as err:  # only possible once inter-op work ran in this process
            warnings.warn(f"inter-op threads stay {torch.get_num_interop_threads()}: {err}", stacklevel=2)


def _slurm_job_id() -> str | None:
    """This job's id as submitted: ``ARRAY_TASK`` inside a job array, else the plain job id (None off SLURM)."""
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def _distributed_rank() -> int:
    """This process's rank in a multi-process (DDP) run, 0 for a single process."""
    from harness.engine.distributed import fill_env_from_slurm

    fill_env_from_slurm()
    return int(os.environ.get("RANK", "0"))


def execute(spec: RunSpec, results_root: Path, data_root: str | None = None) -> str:
    """Train and evaluate one run under its lock (resuming if it was interrupted); returns its final state.
    Rank 0 of a multi-process run holds the lock for all its ranks. Raises ``RunLockedError`` when another
    live process trains the run."""
    directory = prepare(results_root, spec)
    if _distributed_rank() != 0:
        return _train(spec, directory, data_root)
    global _training
    lock = RunLock.acquire(directory)
    if lock is None:
        raise RunLockedError(f"run {spec.run_id} is being trained by {lock_holder(directory) or 'another process'}")
    _training = lock
    try:
        return _train(spec, directory, data_root)
    finally:
        _training = None
        lock.release()


def _train(spec: RunSpec, directory: Path, data_root: str | None) -> str:
    record = RunRecord(directory)
    if record.state in DONE_STATES:
        return record.state
    use_threads(spec.threads)
    write_status(directory, "running", slurm_job_id=_slurm_job_id())
    from harness.engine import train

    try:
        result = train(train_spec(spec, data_root), directory)
    except OSError as err:
        if err.errno not in STORAGE_ERRNOS:
            return _failed(directory, err)
        if not err.filename:  # an append (train.log, metrics.jsonl) that failed names no file: name the run's
            err = OSError(err.errno, err.strerror, str(directory))
        with contextlib.suppress(OSError):  # the storage may refuse this write too
            write_status(directory, "interrupted", reason=describe_os_error(err))
        raise err
    except Exception as err:  # recorded with its reason; the launcher reports it and goes on
        return _failed(directory, err)
    except (KeyboardInterrupt, SystemExit):  # in-process callers: the checkpoints stay, a rerun resumes from them
        write_status(directory, "interrupted", reason="stopped by a signal; a rerun resumes from the last checkpoint")
        raise
    state = "diverged" if result.get("status") == "diverged" else "finished"
    write_status(directory, state, reason=result.get("message") if state == "diverged" else None)
    return state


def _failed(directory: Path, err: Exception) -> str:
    """Record a run's failure with its error, traceback and the end of its log (the launcher reports it)."""
    traceback.print_exc()
    error = f"{type(err).__name__}: {err}"
    reason = f"{error}\n{traceback.format_exc(limit=8)}"
    write_status(directory, "failed", reason=reason + tail_lines(directory / "train.log"), error=error)
    return "failed"


def _stop_now(signum: int, _frame) -> None:
    """Record the run this process trains as interrupted and leave at once (see the module's docstring)."""
    if _training is not None:
        directory = _training.dir
        remove_temp_files(directory, directory / "checkpoints")
        with contextlib.suppress(OSError, ValueError):
            if RunRecord(directory).state not in DONE_STATES:
                write_status(directory, "interrupted", reason=f"stopped by {signal.Signals(signum).name}; a rerun "
                                                              "resumes from the last checkpoint")
        _training.release()  # now: the kernel drops it only once every thread has exited, which takes a while
    _flush_and_exit(128 + signum)


def _flush_and_exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _report_storage_error(err: OSError) -> None:
    """Tell the launcher (through its pipe, when it passed one) and stderr which write the storage refused."""
    with contextlib.suppress(OSError):  # stderr may be a file on the storage that refused the write
        print(f"error: {describe_os_error(err)}", file=sys.stderr, flush=True)
    fd = os.environ.get(MESSAGE_FD_VARIABLE)
    if fd and fd.isdigit():
        message = json.dumps({"errno": err.errno, "strerror": err.strerror, "filename": err.filename})
        with contextlib.suppress(OSError):
            os.write(int(fd), message.encode()[:4000] + b"\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    spec = RunRecord(args.run_dir).spec
    try:
        state = execute(spec, args.run_dir.resolve().parent.parent, args.data_root)
    except RunLockedError as err:
        print(err, file=sys.stderr, flush=True)
        return LOCKED_EXIT
    except OSError as err:
        if err.errno not in STORAGE_ERRNOS:
            raise
        _report_storage_error(err)
        return STORAGE_EXIT
    return 0 if state in DONE_STATES else 1


if __name__ == "__main__":
    for stop_signal in STOP_SIGNALS:  # only as a program: an in-process caller keeps its own handlers
        signal.signal(stop_signal, _stop_now)
    _flush_and_exit(main())  # no interpreter teardown: the run's state is written, and seconds count at shutdown
