"""Shutdown and signal deaths: SIGTERM of the launcher stops every worker at once within one shared grace period,
and a worker killed by a signal is recorded ``interrupted`` and retried up to ``--retries`` times."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main as cli_main
from harness.launch.local import Worker, stop_workers
from harness.runs import RunRecord, lock_holder, prepare, run_dir, write_status
from harness.suite import expand, load_suite


def _gone(pid: int) -> bool:
    """Whether a process has ended (a zombie not yet reaped counts as ended)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _launch(suite: Path, root: Path, *flags: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "harness", "run", str(suite), "--results-dir", str(root), "--no-report", *flags]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(condition, launcher: subprocess.Popen, what: str, timeout_s: float = 600) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        if launcher.poll() is not None or time.time() > deadline:
            launcher.kill()
            pytest.fail(f"{what} never happened:\n{launcher.communicate()[0]}")
        time.sleep(0.2)


def _training(directory: Path) -> bool:
    """Whether a worker holds the run's lock and has begun its epochs."""
    return lock_holder(directory) is not None and (directory / "progress.json").exists()


def _temp_files(root: Path) -> list[Path]:
    return list(root.rglob(".*.tmp*"))


def test_sigterm_of_the_launcher_stops_every_worker_at_once(tmp_path, suite_writer, tiny_model_entry):
    entries = [tiny_model_entry[:-1] + f", seed: {seed}}}" for seed in range(3)]
    suite = suite_writer(tmp_path, "shutdown", entries, "{epochs: 50, limit_batches: 2, subset: 64, energy_images: 0}")
    root = tmp_path / "results"
    directories = [run_dir(root, spec) for spec in expand(load_suite(suite))]
    launcher = _launch(suite, root, "--jobs", "3")
    _wait_for(lambda: all(_training(d) for d in directories), launcher, "three workers training")
    workers = [RunRecord(d).status["pid"] for d in directories]
    launcher.send_signal(signal.SIGTERM)
    try:
        launcher.wait(timeout=30)  # SLURM's default grace before SIGKILL
    finally:
        launcher.kill()
    assert launcher.returncode == 128 + signal.SIGTERM
    assert [pid for pid in workers if not _gone(pid)] == [], "workers outlived their launcher"
    for directory in directories:
        status = RunRecord(directory).status
        assert status["state"] == "interrupted" and "the launcher got SIGTERM" in status["reason"], status
        assert lock_holder(directory) is None
    assert _temp_files(root) == []


def _stubborn_worker(directory: Path) -> Worker:
    """A process in its own group that ignores SIGTERM, standing in for a worker stuck in a long operation."""
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
            "time.sleep(60)")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, process_group=0)
    assert process.stdout.readline() == "ready\n"
    read_end, write_end = os.pipe()
    os.close(write_end)
    return Worker(RunRecord(directory).spec, directory, process, read_end)


def test_workers_share_one_grace_period_then_get_sigkill(tmp_path, suite_writer, tiny_model_entry):
    entries = [tiny_model_entry[:-1] + f", seed: {seed}}}" for seed in range(3)]
    specs = expand(load_suite(suite_writer(tmp_path, "stubborn", entries)))
    directories = [prepare(tmp_path / "results", spec) for spec in specs]
    for directory in directories:
        write_status(directory, "running")
    workers = [_stubborn_worker(directory) for directory in directories]
    processes = [worker.process for worker in workers]
    grace_s = 3.0
    started = time.monotonic()
    stop_workers(workers, "stopped because a test stopped them", grace_s=grace_s)
    elapsed = time.monotonic() - started
    assert [p.returncode for p in processes] == [-signal.SIGKILL] * 3 and workers == []
    assert elapsed < 2 * grace_s, f"{elapsed:.1f} s: the workers were given a grace period each, not one shared"
    for directory in directories:
        status = RunRecord(directory).status
        assert status["state"] == "interrupted" and "stopped because a test stopped them" in status["reason"]


@pytest.mark.parametrize("retries", [1, 0])
def test_a_worker_killed_by_sigkill_is_interrupted_and_retried(tmp_path, suite_writer, tiny_model_entry, retries,
                                                               capsys):
    suite = suite_writer(tmp_path, "oom", [tiny_model_entry], "{epochs: 3, limit_batches: 2, subset: 64, "
                                                              "energy_images: 0}")
    root = tmp_path / "results"
    spec = expand(load_suite(suite))[0]
    directory = run_dir(root, spec)
    launcher = _launch(suite, root, "--retries", str(retries))
    _wait_for(lambda: list(directory.glob("checkpoints/ckpt-e0001-*.pt")), launcher, "a first-epoch checkpoint")
    os.kill(RunRecord(directory).status["pid"], signal.SIGKILL)  # as the OOM killer does
    output = launcher.communicate(timeout=300)[0]
    record = RunRecord(directory)
    if retries:
        assert launcher.returncode == 0, output
        assert f"interrupted {spec.run_id}: worker killed by SIGKILL; retrying" in output
        assert record.state == "finished" and len(record.epochs) == 3
        assert "resumed from ckpt-e0001" in (directory / "train.log").read_text()
        return
    assert launcher.returncode == 1, output
    assert record.state == "interrupted" and "killed by SIGKILL" in record.status["reason"]
    assert "--retries 0" in record.status["reason"] and "retrying" not in output
    assert cli_main(["status", str(suite), "--results-dir", str(root)]) == 0
    shown = capsys.readouterr().out
    assert f"interrupted {spec.run_id}" in shown
    assert "worker killed by SIGKILL on 1 attempt(s), not retried further (--retries 0)" in shown
