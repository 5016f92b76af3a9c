"""What `harness run` tells on the terminal: each failure's reason, an early stop when every run fails alike,
tracebacks in worker.log, a live progress line per running run, and summary counts."""

import re

import pytest

from harness.cli import main
from harness.launch import local
from harness.launch.local import SuiteOutcome, run_suite
from harness.runs import RunRecord, run_dir
from harness.suite import expand, load_suite


def test_a_suite_whose_first_runs_fail_alike_stops_with_the_reason(tmp_path, suite_writer, tiny_model_entry,
                                                                    capsys):
    runs = [tiny_model_entry.replace("dataset: digits", "dataset: cifar10").replace("T: 2", f"T: 2, seed: {seed}")
            for seed in range(5)]
    suite = suite_writer(tmp_path, "nodata", runs)
    specs = expand(load_suite(suite))
    root = tmp_path / "results"
    code = main(["run", str(suite), "--results-dir", str(root), "--data-root", str(tmp_path / "empty"),
                 "--no-report"])
    out, err = capsys.readouterr()
    assert code == 2
    for k, spec in enumerate(specs[:3], start=1):
        assert f"[{k}/5] failed {spec.run_id}: DatasetError: dataset 'cifar10' not found" in out
        assert "Traceback (most recent call last)" in (run_dir(root, spec) / "worker.log").read_text()
    assert "stopped, the first 3 runs all failed with DatasetError: dataset 'cifar10' not found" in err
    assert "cifar-10-batches-py" in err and "Traceback" not in err
    assert {RunRecord(run_dir(root, spec)).state for spec in specs[3:]} == {"pending"}, "the rest never ran"
    assert "nodata: 3 failed" in out


def test_runs_failing_for_different_reasons_do_not_stop_the_suite():
    outcome = SuiteOutcome(states={"a": "failed", "b": "failed", "c": "failed"})
    assert not local._shared_failure(outcome, ["E: one", "E: two", "E: one"], total=5)
    assert local._shared_failure(outcome, ["E: one"] * 3, total=5) and "E: one" in outcome.aborted
    assert not local._shared_failure(SuiteOutcome(states={"a": "failed", "b": "finished", "c": "failed"}),
                                     ["E: one"] * 2, total=5)


def test_each_running_run_shows_live_progress_one_start_line_and_the_suite_eta(tmp_path, suite_writer,
                                                                               tiny_model_entry, capsys, monkeypatch):
    monkeypatch.setattr(local, "HEARTBEAT_S", 0.5)
    runs = [tiny_model_entry.replace("T: 2", f"T: 2, seed: {seed}") for seed in (0, 1)]
    suite = suite_writer(tmp_path, "live", runs, "{epochs: 2, limit_batches: 4, subset: 128}")
    specs = expand(load_suite(suite))
    assert set(run_suite(specs, tmp_path / "results").states.values()) == {"finished"}
    out = capsys.readouterr().out.splitlines()
    for spec in specs:
        lines = [line.strip() for line in out if line.strip().startswith(spec.run_id)]
        trained = [line for line in lines if " step " in line]
        assert trained, lines
        pattern = rf"{spec.run_id} epoch [12]/2 step [1-4]/4 loss=\S+ eta \d+m\d\ds"
        assert all(re.match(pattern, line) for line in trained), trained
        assert len([line for line in out if spec.run_id in line and "start" in line]) == 1, out
    suite_lines = [line.strip() for line in out if line.strip().startswith("suite: ")]
    assert suite_lines and all(re.match(r"suite: [0-2]/2 done, [01] running, [01] queued", s) for s in suite_lines)
    assert any(re.search(r", eta ~\d+m\d\ds$", line) for line in suite_lines), suite_lines


@pytest.mark.parametrize("outcome, line", [
    (SuiteOutcome(states={"a": "finished", "b": "diverged", "c": "failed"}), "1 diverged, 1 failed, 1 finished"),
    (SuiteOutcome(skipped={"a": "finished", "b": "diverged"}), "1 already diverged, 1 already finished"),
    (SuiteOutcome(states={"a": "finished"}, skipped={"b": "finished"}, locked={"c": "h/1"}),
     "1 finished, 1 already finished, 1 trained by another process"),
    (SuiteOutcome(), "no runs"),
])
def test_summary_counts_every_state_without_dangling_commas(outcome, line):
    assert outcome.summary() == line
