"""The run id: every RunSpec field that shapes a run's numbers changes it, the others do not. Each field must be
classified below, so a new RunSpec field that nobody classified fails here."""

import shutil
import textwrap

import pytest

import harness.recipe
from harness.suite import RunSpec, expand, load_suite

BASE = dict(suite="s", model="qkformer_2_256.cifar10dvs", dataset="digits_dvs", T=2, seed=0, recipe="digits_dvs",
            recipe_hash="0123456789abcdef", overrides={"heads": 2}, recipe_overrides={"optim.lr": 1e-3},
            variant=None, data_options={"size": 16}, epochs=None, limit_batches=None, subset=None,
            energy_images="all", threads=1, weights=None, weights_sha256=None, weights_file=None)
# field -> another value: each shapes the run's numbers (variant names a row of the paper's tables), so each
# must change the run id
IN_RUN_ID = dict(model="msvit_4_384.cifar10", dataset="digits", T=4, seed=1, recipe="digits",
                 recipe_hash="fedcba9876543210", overrides={"heads": 4}, recipe_overrides={"optim.lr": 2e-3},
                 variant="fixed", data_options={"size": 32}, epochs=3, limit_batches=5, subset=100, energy_images=1000,
                 threads=2, weights="released", weights_sha256="a" * 64)
# field -> another value: these do not shape the numbers, so the same run in two suites is one run, and the same
# weights file (by content) at another place is one run
NOT_IN_RUN_ID = dict(suite="other", weights_file="elsewhere/w.pth")


def test_a_weights_file_counts_by_its_content_not_by_the_path_that_names_it():
    def spec(weights: str, sha: str):
        return RunSpec(**{**BASE, "weights": weights, "weights_sha256": sha, "weights_file": weights})

    assert spec("a/w.pth", "a" * 64).run_id == spec("/elsewhere/w.pth", "a" * 64).run_id
    assert spec("a/w.pth", "a" * 64).run_id != spec("a/w.pth", "b" * 64).run_id
    assert spec("released", "a" * 64).run_id != spec("a/w.pth", "a" * 64).run_id


def test_every_runspec_field_is_classified():
    assert set(RunSpec.model_fields) == set(BASE), "BASE must give every RunSpec field a value"
    unclassified = set(RunSpec.model_fields) - set(IN_RUN_ID) - set(NOT_IN_RUN_ID)
    assert not unclassified, f"classify the new RunSpec field(s) {sorted(unclassified)} here: in the run id or not"


@pytest.mark.parametrize("field", sorted(IN_RUN_ID))
def test_a_result_shaping_field_changes_the_run_id(field):
    assert RunSpec(**{**BASE, field: IN_RUN_ID[field]}).run_id != RunSpec(**BASE).run_id


@pytest.mark.parametrize("field", sorted(NOT_IN_RUN_ID))
def test_a_field_that_does_not_shape_results_keeps_the_run_id(field):
    assert RunSpec(**{**BASE, field: NOT_IN_RUN_ID[field]}).run_id == RunSpec(**BASE).run_id


def test_key_order_of_mappings_does_not_change_the_run_id():
    spec = RunSpec(**{**BASE, "recipe_overrides": {"optim.lr": 1e-3, "train.batch_size": 8}})
    same = RunSpec(**{**BASE, "recipe_overrides": {"train.batch_size": 8, "optim.lr": 1e-3}})
    assert spec.run_id == same.run_id


def _suite_ids(tmp_path, name, entry):
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""
        runs:
          - {{model: qkformer_2_256.cifar10dvs, dataset: digits, T: 2, recipe: digits{entry}}}
        """))
    return expand(load_suite(path))[0]


@pytest.mark.parametrize("entry", [", overrides: {heads: 4}", ", recipe_overrides: {optim.lr: 0.002}",
                                   ", data_options: {size: 16}", ", seed: 1", ", T: 4"],
                         ids=["overrides", "recipe_overrides", "data_options", "seed", "T"])
def test_suite_entries_reach_the_run_id(tmp_path, entry):
    assert _suite_ids(tmp_path, "changed", entry).run_id != _suite_ids(tmp_path, "plain", "").run_id


def _expanded_with_edited_recipe(tmp_path, monkeypatch, recipe_name: str, old: str, new: str, expand_once):
    """``expand_once()`` with recipe ``recipe_name``'s text ``old`` replaced by ``new`` in a copy of the recipes."""
    recipes = tmp_path / "recipes"
    shutil.copytree(harness.recipe.RECIPE_DIR, recipes)
    recipe = recipes / f"{recipe_name}.yaml"
    text = recipe.read_text()
    assert old in text
    recipe.write_text(text.replace(old, new))
    monkeypatch.setattr(harness.recipe, "RECIPE_DIR", recipes)
    harness.recipe.load_recipe.cache_clear()
    try:
        return expand_once()
    finally:
        harness.recipe.load_recipe.cache_clear()


def test_the_recipe_content_reaches_the_run_id(tmp_path, monkeypatch):
    before = _suite_ids(tmp_path, "plain", "")
    after = _expanded_with_edited_recipe(tmp_path, monkeypatch, "digits", "\n  lr: 2.0e-3\n", "\n  lr: 3.0e-3\n",
                                         lambda: _suite_ids(tmp_path, "edited", ""))
    assert after.recipe_hash != before.recipe_hash and after.run_id != before.run_id


def test_the_distillation_settings_reach_the_run_id(tmp_path, monkeypatch):
    """A recipe's distill section (type, alpha, tau, teacher) shapes the numbers: editing it changes the run id."""
    path = tmp_path / "kd.yaml"
    path.write_text("runs:\n  - {model: sdtv3_83m.in1k, dataset: imagenet}\n")
    before, = expand(load_suite(path))
    after, = _expanded_with_edited_recipe(tmp_path, monkeypatch, "sdtv3_in1k_kd", "\n  tau: 1.0\n", "\n  tau: 3.0\n",
                                          lambda: expand(load_suite(path)))
    assert before.recipe == after.recipe == "sdtv3_in1k_kd" and after.run_id != before.run_id


def test_a_recipe_without_distillation_hashes_without_the_distill_section():
    """Switched off, distillation leaves the recipe's identity as it was before the section existed; on, it is
    part of it."""
    plain = harness.recipe.load_recipe("digits")
    assert plain.distill.type == "none" and "distill" not in plain.identity_json()
    kd = harness.recipe.load_recipe("sdtv3_in1k_kd")
    assert kd.distill.type != "none" and '"distill"' in kd.identity_json()


def test_run_ids_stay_those_of_finished_runs(tmp_path):
    """A released run id never moves unless something that shapes the run changes: this run (the smoke suite's
    Spikformer entry at its former 5-epoch budget) got its id from the code before the distill section existed
    (commit faf32bc); results stored under it are found again."""
    path = tmp_path / "smoke.yaml"
    path.write_text("name: smoke\nseeds: [0]\nbudget: {epochs: 5}\nruns:\n  - {model: spikformer_4_384.cifar10, "
                    "dataset: digits, T: 4, overrides: {dim: 64, depth: 1, heads: 4}}\n")
    run, = expand(load_suite(path))
    assert run.run_id == "59381c10da22b747"
