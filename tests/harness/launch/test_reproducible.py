"""A run's numbers depend on the run, not on how it was launched (its CPU threads are part of it), and a
run records the code that computed it: runs computed by other code are stale and recomputed on request."""

import json

from harness.cli import main
from harness.engine import TIMING_KEYS
from harness.engine.provenance import code_fingerprint, code_modules
from harness.launch.local import run_suite
from harness.runs import RunRecord, run_dir
from harness.suite import expand, load_suite
from zoo.registry import model_module


def _numbers(record: RunRecord) -> tuple:
    final = {k: v for k, v in record.final.items() if k not in TIMING_KEYS and k not in ("last", "energy")}
    epochs = [{k: v for k, v in line.items() if k not in TIMING_KEYS} for line in record.epochs]
    return final, epochs


def test_jobs_1_and_jobs_2_give_identical_numbers(tiny_suite_results, tmp_path):
    good, _ = tiny_suite_results["specs"]  # the fixture ran it with --jobs 2
    root = tmp_path / "results"
    assert run_suite([good], root, jobs=1).states == {good.run_id: "finished"}
    parallel, alone = RunRecord(run_dir(tiny_suite_results["root"], good)), RunRecord(run_dir(root, good))
    for record in (parallel, alone):
        threads = record.config["provenance"]["threads"]
        assert (threads["torch"], threads["interop"], threads["OMP_NUM_THREADS"]) == (1, 1, "1")
    assert _numbers(alone) == _numbers(parallel)


def test_the_run_fixes_its_threads_whatever_the_launcher(tmp_path, suite_writer, tiny_model_entry):
    budget = "{epochs: 1, limit_batches: 1, subset: 32, energy_images: 0, threads: 2}"
    spec = expand(load_suite(suite_writer(tmp_path, "threads", [tiny_model_entry], budget)))[0]
    assert spec.threads == 2
    root = tmp_path / "results"
    assert run_suite([spec], root, jobs=4).states == {spec.run_id: "finished"}
    threads = RunRecord(run_dir(root, spec)).config["provenance"]["threads"]
    assert (threads["torch"], threads["interop"], threads["OMP_NUM_THREADS"]) == (2, 2, "2")


def test_a_run_records_the_code_fingerprint(tiny_suite_results):
    good, _ = tiny_suite_results["specs"]
    record = RunRecord(run_dir(tiny_suite_results["root"], good))
    current = code_fingerprint(good.model, good.recipe)
    assert record.config["provenance"]["code_fingerprint"] == record.final["code_fingerprint"] == current
    assert record.config["provenance"]["code_modules"] == code_modules(good.model, good.recipe)
    assert not record.stale


def test_runs_of_other_code_are_stale_and_recomputed_unless_kept(tiny_results_copy, capsys):
    good, _ = tiny_results_copy["specs"]
    root = tiny_results_copy["root"]
    directory = run_dir(root, good)
    config = json.loads((directory / "config.json").read_text())
    config["provenance"]["code_fingerprint"] = "0" * 16
    model_file = model_module(good.model).replace(".", "/") + ".py"
    config["provenance"]["code_modules"][model_file] = "0" * 16
    (directory / "config.json").write_text(json.dumps(config))
    assert RunRecord(directory).stale
    main(["status", str(tiny_results_copy["suite_path"]), "--results-dir", str(root)])
    lines = capsys.readouterr().out.splitlines()
    stale = next(i for i, line in enumerate(lines) if line.startswith("stale") and good.run_id in line)
    assert lines[stale + 1].split() == ["changed:", model_file]

    kept = run_suite([good], root, keep_stale=True)
    assert kept.skipped == {good.run_id: "finished"} and not kept.set_aside and RunRecord(directory).stale

    redone = run_suite([good], root)
    assert redone.states == {good.run_id: "finished"}
    old = redone.set_aside[good.run_id]
    assert old.parent == root / "stale" and (old / "final.json").exists(), "the old run is kept, not deleted"
    assert json.loads((old / "config.json").read_text())["provenance"]["code_fingerprint"] == "0" * 16
    assert not RunRecord(directory).stale
    assert _numbers(RunRecord(directory)) == _numbers(RunRecord(old)), "same code path: same numbers"
