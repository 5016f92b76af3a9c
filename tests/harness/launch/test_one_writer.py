"""One writer per run: a run directory's lock keeps a second launcher (or worker) off a run a live process
trains, and a run's state tells a live worker from a dead one by that lock."""

import os
import socket
import subprocess
import sys

from harness.launch.local import run_suite
from harness.launch.worker import LOCKED_EXIT
from harness.launch.worker import main as worker_main
from harness.runs import RunLock, RunRecord, lock_holder, prepare, write_status
from harness.suite import expand, load_suite
from harness.tracking import default_uri, ensure_store

ME = f"{socket.gethostname()}/{os.getpid()}"


def _spec(tmp_path, suite_writer, tiny_model_entry, budget="{epochs: 2, limit_batches: 2, subset: 64}"):
    return expand(load_suite(suite_writer(tmp_path, "one", [tiny_model_entry], budget)))[0]


def test_a_held_lock_names_its_holder_and_dies_with_it(tmp_path):
    assert lock_holder(tmp_path) is None
    lock = RunLock.acquire(tmp_path)
    assert lock is not None and lock_holder(tmp_path) == ME
    assert RunLock.acquire(tmp_path, patience_s=0) is None, "a second writer must not get the lock"
    lock.release()
    assert lock_holder(tmp_path) is None
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from harness.runs import RunLock; RunLock.acquire(Path(sys.argv[1])); "
                               "print('held', flush=True); time.sleep(600)", str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    assert lock_holder(tmp_path) == f"{socket.gethostname()}/{holder.pid}"
    holder.kill()
    holder.wait()
    assert lock_holder(tmp_path) is None, "the kernel releases the lock of a killed process"


def test_running_state_follows_the_lock_not_the_pid(tmp_path, suite_writer, tiny_model_entry):
    directory = prepare(tmp_path / "results", _spec(tmp_path, suite_writer, tiny_model_entry))
    write_status(directory, "running")  # records this live process's pid
    assert RunRecord(directory).state == "interrupted", "a live pid without the lock is no live writer"
    lock = RunLock.acquire(directory)
    assert RunRecord(directory).state == "running"
    lock.release()
    assert RunRecord(directory).state == "interrupted"


def test_launcher_and_worker_leave_a_locked_run_to_its_holder(tmp_path, suite_writer, tiny_model_entry, capsys):
    spec = _spec(tmp_path, suite_writer, tiny_model_entry)
    root = tmp_path / "results"
    directory = prepare(root, spec)
    lock = RunLock.acquire(directory)
    try:
        outcome = run_suite([spec], root)
        assert outcome.locked == {spec.run_id: ME} and outcome.states == {}
        assert f"skipped   {spec.run_id}: being trained by {ME}" in capsys.readouterr().out
        assert worker_main([str(directory)]) == LOCKED_EXIT
        assert f"being trained by {ME}" in capsys.readouterr().err
    finally:
        lock.release()
    assert not (directory / "metrics.jsonl").exists() and RunRecord(directory).state == "pending"


def test_two_concurrent_launchers_train_each_run_once(tmp_path, suite_writer, tiny_model_entry):
    spec = _spec(tmp_path, suite_writer, tiny_model_entry)
    suite = tmp_path / "one.yaml"
    root = tmp_path / "results"
    ensure_store(default_uri(root))  # a fresh store is created once, before parallel use
    command = [sys.executable, "-m", "harness", "run", str(suite), "--results-dir", str(root), "--no-report"]
    launchers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
    try:
        outputs = [launcher.communicate(timeout=540)[0] for launcher in launchers]
    finally:  # a launcher left over by a failure is stopped (and its worker with it)
        for launcher in launchers:
            if launcher.poll() is None:
                launcher.terminate()
                launcher.wait()
    assert [launcher.returncode for launcher in launchers] == [0, 0], outputs
    record = RunRecord(root / "runs" / spec.run_id)
    assert record.state == "finished"
    assert [line["epoch"] for line in record.epochs] == [0, 1], "one metrics line per epoch"
    log = (record.dir / "train.log").read_text()
    assert log.count("epoch 0 done") == 1 and log.count("finished: ") == 1, log
    trained = [out for out in outputs if f"finished  {spec.run_id}" in out]
    assert len(trained) == 1, outputs
