"""Local launcher: one subprocess per run, crashes isolated, finished runs never rerun, killed runs resume."""

import signal
import subprocess
import sys
import time

import pytest

from harness.launch import local
from harness.launch.local import run_suite
from harness.runs import RunRecord, lock_holder, run_dir
from harness.suite import expand, load_suite
from harness.tracking import default_uri, final_metrics, runs_frame


def test_good_run_finishes_and_failing_run_is_isolated(tiny_suite_results):
    good, bad = tiny_suite_results["specs"]
    outcome = tiny_suite_results["outcome"]
    assert outcome.states == {good.run_id: "finished", bad.run_id: "failed"}
    record = RunRecord(run_dir(tiny_suite_results["root"], good))
    assert record.state == "finished"
    assert len(record.epochs) == 1 and record.final["status"] == "finished"
    failed = RunRecord(run_dir(tiny_suite_results["root"], bad)).status
    assert failed["state"] == "failed" and "cifar-10-batches-py" in failed["reason"]


def test_finished_runs_reach_mlflow_with_their_metrics(tiny_suite_results):
    good, _ = tiny_suite_results["specs"]
    frame = runs_frame(default_uri(tiny_suite_results["root"]), suite="tiny")
    finished = frame[frame["state"] == "finished"]
    assert list(finished["run_id"]) == [good.run_id]
    expected = final_metrics(RunRecord(run_dir(tiny_suite_results["root"], good)).final)
    row = finished.iloc[0]
    assert row["top1"] == expected["top1"] and row["params"] == expected["params"]
    assert row["family"] == "qkformer" and row["command"].endswith(f"--only {good.run_id}")


def test_rerun_skips_finished_runs_without_training(tiny_results_copy):
    good, bad = tiny_results_copy["specs"]
    root = tiny_results_copy["root"]
    checkpoints = sorted((run_dir(root, good) / "checkpoints").iterdir())
    before = {p: p.stat().st_mtime_ns for p in checkpoints}
    outcome = run_suite([good], root, tracking_uri=default_uri(root))
    assert outcome.skipped == {good.run_id: "finished"} and outcome.states == {}
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == before


def test_unreachable_tracking_server_does_not_fail_the_run(tmp_path, monkeypatch, suite_writer, tiny_model_entry):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    suite = suite_writer(tmp_path, "offline", [tiny_model_entry], "{epochs: 1, limit_batches: 1, subset: 32}")
    specs = expand(load_suite(suite))
    root = tmp_path / "results"
    outcome = run_suite(specs, root, tracking_uri="http://127.0.0.1:9")
    assert outcome.states == {specs[0].run_id: "finished"}
    assert outcome.tracking_errors and "127.0.0.1:9" in outcome.tracking_errors[0]
    from harness.tracking import collect

    assert collect(root, default_uri(root))["logged"] == 1, "collect catches up what the server missed"


def test_a_free_worker_starts_the_next_run_before_the_finished_one_is_logged(tmp_path, suite_writer,
                                                                            tiny_model_entry, monkeypatch, capsys):
    """MLflow logging takes seconds in the launcher: the next run must not wait for it."""
    runs = [tiny_model_entry, tiny_model_entry[:-1] + ", seed: 1}"]
    specs = expand(load_suite(suite_writer(tmp_path, "relay", runs, "{epochs: 1, limit_batches: 1, subset: 32, "
                                                                    "energy_images: 0}")))
    root = tmp_path / "results"
    printed_before_logging = {}
    log = local._log

    def spy(spec, *args):
        printed_before_logging[spec.run_id] = capsys.readouterr().out
        log(spec, *args)

    monkeypatch.setattr(local, "_log", spy)
    outcome = run_suite(specs, root, tracking_uri=default_uri(root))
    assert outcome.states == {spec.run_id: "finished" for spec in specs}
    assert f"started   {specs[1].run_id}" in printed_before_logging[specs[0].run_id]


def _gone(pid: int) -> bool:
    """Whether a process has ended (a zombie not yet reaped counts as ended)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_launcher_takes_its_worker_down_and_the_rerun_resumes(tmp_path, suite_writer, tiny_model_entry,
                                                                      signum):
    suite = suite_writer(tmp_path, "killed", [tiny_model_entry], "{epochs: 3, limit_batches: 2, subset: 64}")
    specs = expand(load_suite(suite))
    spec = specs[0]
    root = tmp_path / "results"
    code = ("import sys; from pathlib import Path; from harness.launch.local import run_suite\n"
            "from harness.suite import expand, load_suite\n"
            f"run_suite(expand(load_suite({str(suite)!r})), Path({str(root)!r}))")
    parent = subprocess.Popen([sys.executable, "-c", code])
    directory = run_dir(root, spec)
    deadline = time.time() + 240
    while not list(directory.glob("checkpoints/ckpt-e0001-*.pt")):
        assert time.time() < deadline and parent.poll() is None, "no first-epoch checkpoint appeared"
        time.sleep(0.2)
    worker = RunRecord(directory).status["pid"]
    assert worker != parent.pid
    parent.send_signal(signum)  # the launcher alone: its worker runs in a process group of its own
    parent.wait()
    deadline = time.time() + 15
    while not _gone(worker):
        assert time.time() < deadline, f"worker {worker} outlived its launcher (killed by {signum.name})"
        time.sleep(0.1)
    assert RunRecord(directory).state == "interrupted"
    assert lock_holder(directory) is None
    outcome = run_suite(specs, root)
    assert outcome.states == {spec.run_id: "finished"}
    log = (directory / "train.log").read_text()
    assert "resumed from ckpt-e0001" in log
    assert len(RunRecord(directory).epochs) == 3
