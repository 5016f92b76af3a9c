"""`harness run --fast` (and `validate`/`status --fast`): every training run gets `train.fast: true` (a run id of
its own), the case fast mode chose on this machine is printed among the first lines and recorded by each run."""

import json

import pytest

from harness.cli import main
from harness.engine.numerics import fast_choice
from harness.runs import run_dir
from harness.suite import expand, load_suite

ENTRY = "{model: qkformer_2_256.cifar10dvs, dataset: digits_dvs, T: 2, recipe: digits_dvs%s}"


def _suite(tmp_path, recipe_overrides: str = "", budget: str = "{epochs: 1, limit_batches: 2, subset: 64}"):
    path = tmp_path / "f.yaml"
    extra = f", recipe_overrides: {{{recipe_overrides}}}" if recipe_overrides else ""
    path.write_text(f"name: f\nbudget: {budget}\nruns:\n  - {ENTRY % extra}\n")
    return path


def _ids(capsys, argv):
    assert main(argv) == 0, capsys.readouterr().err
    return [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]


def test_fast_gives_every_training_run_its_own_id(tmp_path, capsys):
    suite = _suite(tmp_path)
    exact, fast = _ids(capsys, ["validate", str(suite)]), _ids(capsys, ["validate", str(suite), "--fast"])
    assert exact != fast and fast == _ids(capsys, ["validate", str(suite), "--fast"])
    (spec,) = expand(load_suite(suite))
    assert exact == [spec.run_id] and "train.fast" not in spec.recipe_overrides


def test_a_recipe_that_already_runs_fast_keeps_its_id(tmp_path, capsys):
    suite = _suite(tmp_path, "train.fast: true")
    assert _ids(capsys, ["validate", str(suite)]) == _ids(capsys, ["validate", str(suite), "--fast"])


@pytest.mark.parametrize("fixed", ["train.precision: bf16", "train.channels_last: true", "train.compile: true"])
def test_a_recipe_that_fixes_the_numerics_is_a_one_line_error(tmp_path, capsys, fixed):
    suite = _suite(tmp_path, fixed)
    assert main(["validate", str(suite)]) == 0, "valid without --fast"
    capsys.readouterr()
    assert main(["run", str(suite), "--fast", "--results-dir", str(tmp_path / "r"), "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --fast: {suite}: run qkformer_2_256.cifar10dvs on digits_dvs: train.fast chooses "
                   f"precision, channels_last and compile for the device it runs on; drop "
                   f"{fixed.removeprefix('train.')}"], err
    assert not (tmp_path / "r" / "runs").exists(), "nothing was started"


def test_a_fast_run_says_and_records_its_case_and_an_exact_run_records_none(tmp_path, capsys):
    suite, root = _suite(tmp_path, budget="{epochs: 1, limit_batches: 2, subset: 64, energy_images: 0}"), tmp_path / "r"
    choice = fast_choice("cpu")
    assert main(["run", str(suite), "--results-dir", str(root), "--no-report", "--fast"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == (f"f: fast mode ({choice.case}): {choice.reason}; each run records it as resolved.fast in its "
                        f"config.json"), lines[:4]
    assert main(["run", str(suite), "--results-dir", str(root), "--no-report"]) == 0
    assert not any("fast mode" in line for line in capsys.readouterr().out.splitlines())
    (exact,) = expand(load_suite(suite))
    fast_dirs = [d for d in (root / "runs").iterdir() if d != run_dir(root, exact)]
    assert len(fast_dirs) == 1, "two runs, two directories"
    assert json.loads((fast_dirs[0] / "config.json").read_text())["resolved"]["fast"] == choice.settings()
    assert json.loads((run_dir(root, exact) / "config.json").read_text())["resolved"]["fast"] is None
    assert json.loads((fast_dirs[0] / "spec.json").read_text())["recipe_overrides"] == {"train.fast": True}
