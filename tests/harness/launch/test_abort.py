"""A suite that aborts (its first runs all failed for one reason) records why each run it stopped has no result."""

from harness.launch.local import SHARED_FAILURES, run_suite
from harness.runs import RunRecord, run_dir
from harness.suite import expand, load_suite

LONG = ", recipe_overrides: {optim.epochs: 500}}"
SHORT = ", recipe_overrides: {optim.epochs: 1}, seed: %d}"


def test_runs_stopped_by_an_abort_are_recorded_with_its_reason(tmp_path, suite_writer, tiny_model_entry):
    """Two workers: a long digits run trains while CIFAR-10 runs fail one after another (no dataset under the data
    root); the third failure aborts the suite, which stops the long run. It is recorded ``interrupted`` with the
    abort's reason; the failed runs keep theirs; the run never started keeps no state beyond ``pending``."""
    cifar = tiny_model_entry.replace("dataset: digits", "dataset: cifar10")[:-1]
    entries = [tiny_model_entry[:-1] + LONG] + [cifar + SHORT % seed for seed in range(SHARED_FAILURES + 1)]
    suite = suite_writer(tmp_path, "aborts", entries, "{limit_batches: 2, subset: 64, energy_images: 0}")
    long_run, *cifar_runs = expand(load_suite(suite))
    root, data_root = tmp_path / "results", tmp_path / "no-datasets-here"

    outcome = run_suite([long_run, *cifar_runs], root, jobs=2, data_root=str(data_root))

    assert outcome.aborted and "DatasetError" in outcome.aborted
    failed, never_started = cifar_runs[:SHARED_FAILURES], cifar_runs[SHARED_FAILURES]
    stopped = RunRecord(run_dir(root, long_run)).status
    assert stopped["state"] == "interrupted"
    first_line = stopped["reason"].splitlines()[0]
    assert first_line == (f"suite aborted because the first {SHARED_FAILURES} runs all failed with DatasetError: "
                          f"dataset 'cifar10' not found or incomplete under {data_root}")
    assert outcome.states[long_run.run_id] == "interrupted" and outcome.reasons[long_run.run_id] == first_line
    for spec in failed:
        status = RunRecord(run_dir(root, spec)).status
        assert status["state"] == "failed"
        assert status["reason"].startswith(f"DatasetError: dataset 'cifar10' not found or incomplete under {data_root}")
    untouched = RunRecord(run_dir(root, never_started)).status
    assert untouched["state"] == "pending" and untouched["reason"] is None
    assert never_started.run_id not in outcome.states
