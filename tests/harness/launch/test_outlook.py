"""What `harness run` says first (the plan line, before any model is built), that MLflow's own log lines stay
silent, and the suite-wide ETA of the progress lines."""

import json
import subprocess
import sys

import pytest

from harness.launch.outlook import SuiteClock, plan_line, training_left_s
from harness.runs import RunLock, RunRecord, run_dir


def test_the_plan_line_counts_runs_to_train_done_and_trained_elsewhere(tiny_results_copy):
    root, (good, bad) = tiny_results_copy["root"], tiny_results_copy["specs"]
    specs = [good, bad]
    assert plan_line("tiny", specs, root, jobs=2) == "tiny: 2 runs: 1 to train, 1 already done, 1 at a time"
    assert plan_line("tiny", specs[:1], root, jobs=2) == "tiny: 1 run: 0 to train, 1 already done"
    lock = RunLock.acquire(run_dir(root, bad))
    try:
        assert plan_line("tiny", specs, root, jobs=2) == ("tiny: 2 runs: 0 to train, 1 already done, "
                                                          "1 trained by another process")
    finally:
        lock.release()
    config = run_dir(root, good) / "config.json"
    resolved = json.loads(config.read_text())
    resolved["provenance"]["code_fingerprint"] = "other code"
    config.write_text(json.dumps(resolved))
    final = run_dir(root, good) / "final.json"
    final.write_text(json.dumps({**json.loads(final.read_text()), "code_fingerprint": "other code"}))
    assert RunRecord(run_dir(root, good)).checkout_fingerprint != "other code"
    assert plan_line("tiny", specs, root, jobs=1) == ("tiny: 2 runs: 2 to train (1 stale, recomputed), "
                                                      "0 already done, 1 at a time")
    assert plan_line("tiny", specs, root, jobs=1, keep_stale=True) == ("tiny: 2 runs: 1 to train, 1 already done, "
                                                                       "1 at a time")


def test_run_says_what_it_will_do_before_building_anything_and_mlflow_stays_quiet(tmp_path, suite_writer,
                                                                                   tiny_model_entry):
    suite = suite_writer(tmp_path, "first", [tiny_model_entry])
    root = tmp_path / "results"
    result = subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--results-dir", str(root),
                             "--no-report"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"first: resolving the runs of {suite} (loading torch and the model zoo takes a few seconds)"
    assert lines[1] == "first: 1 run: 1 to train, 0 already done, 1 at a time"
    assert lines[2].startswith(f"creating the tracking store {root / 'mlflow.db'}")
    assert lines[3].startswith("started ")
    assert any(line.startswith("[1/1] finished") for line in lines) and lines[-1] == "first: 1 finished"
    output = result.stdout + result.stderr
    assert " INFO " not in output and "mlflow.store" not in output and "alembic" not in output, output
    assert (root / "mlflow.db").is_file(), "the run was logged, quietly"


def test_a_mistake_in_the_suite_file_is_the_only_line(tmp_path):
    suite = tmp_path / "bad.yaml"
    suite.write_text("runs:\n  - {model: qkformer_4_384.cifar10, dataset: digits, T: 0}\n")
    result = subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--results-dir",
                             str(tmp_path / "results")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == "", result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and "runs.0.T" in result.stderr, result.stderr


def _running_run(directory, epoch: int, position: int, per_epoch: int, epochs: int, rate: float):
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"resolved": {"total_epochs": epochs,
                                                                     "batches_per_epoch": per_epoch}}))
    (directory / "progress.json").write_text(json.dumps({"epoch": epoch, "position": position, "total": per_epoch,
                                                         "batches_per_s": rate, "stats": {}, "time": 0}))
    return directory


def test_a_running_runs_training_left_is_its_remaining_batches_at_its_speed(tmp_path):
    assert training_left_s(_running_run(tmp_path / "a", epoch=1, position=10, per_epoch=20, epochs=2,
                                        rate=2.0)) == pytest.approx(5.0)
    (tmp_path / "b").mkdir()
    assert training_left_s(tmp_path / "b") is None, "no report yet"


def test_the_suite_eta_scales_queued_runs_by_their_expected_cost(tmp_path):
    clock = SuiteClock(jobs=1, costs={"done": 1.0, "big": 3.0, "small": 1.0}, took={"done": 10.0})
    assert clock.eta_s({}, ["big"]) == pytest.approx(30.0)
    assert SuiteClock(jobs=2, costs=clock.costs, took=clock.took).eta_s({}, ["big", "small"]) == pytest.approx(20.0)
    uniform = SuiteClock(jobs=1, took={"done": 10.0})
    assert uniform.eta_s({}, ["big", "small"]) == pytest.approx(20.0), "without costs, every run weighs the same"


def test_the_suite_eta_counts_a_running_runs_own_eta_and_waits_for_a_first_report(tmp_path):
    running = {"run": _running_run(tmp_path / "run", epoch=0, position=10, per_epoch=20, epochs=1, rate=1.0)}
    clock = SuiteClock(jobs=1)
    clock.start("run")
    assert clock.eta_s(running, ["next"]) == pytest.approx(10.0 + 10.0, abs=0.5), "10 s left, then a run as long"
    assert clock.line(3, running, ["next"]).startswith("suite: 1/3 done, 1 running, 1 queued, eta ~0m")
    silent = SuiteClock(jobs=1)
    assert silent.eta_s({"new": tmp_path / "new"}, ["next"]) is None
    assert silent.line(2, {"new": tmp_path / "new"}, ["next"]) == "suite: 0/2 done, 1 running, 1 queued"
