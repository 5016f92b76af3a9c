"""Suite files: validation errors name file, line and field; expansion and run ids are stable."""

import textwrap
import warnings
from pathlib import Path

import pytest

from harness.suite import Budget, SuiteError, expand, load_suite

MODEL = "qkformer_2_256.cifar10dvs"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_grid_expands_over_models_datasets_T_seeds_and_variants(tmp_path):
    path = write(tmp_path, "s.yaml", f"""
        seeds: [0, 1]
        grid:
          - models: [{MODEL}]
            datasets: [digits_dvs]
            T: [2, 4]
            recipe: digits_dvs
            variants: {{plain: {{}}, fixed: {{official_quirks: false}}}}
        """)
    specs = expand(load_suite(path))
    assert len(specs) == 2 * 2 * 2
    assert {(s.T, s.seed, s.variant) for s in specs} == {(t, s, v) for t in (2, 4) for s in (0, 1) for v in ("plain", "fixed")}
    assert all(s.suite == "s" for s in specs)
    fixed = [s for s in specs if s.variant == "fixed"]
    assert all(s.overrides == {"official_quirks": False} for s in fixed)
    assert len({s.run_id for s in specs}) == len(specs)


def test_run_ids_are_stable_and_content_addressed(tmp_path):
    text = f"""
        runs:
          - {{model: {MODEL}, dataset: digits_dvs, T: 2, seed: 3, recipe: digits_dvs}}
        """
    first = expand(load_suite(write(tmp_path, "a.yaml", text)))[0]
    again = expand(load_suite(write(tmp_path, "b.yaml", text)))[0]
    assert first.run_id == again.run_id, "the suite name is not part of the run id"
    assert len(first.run_id) == 16
    budgeted = expand(load_suite(tmp_path / "a.yaml"), Budget(epochs=1))[0]
    assert budgeted.run_id != first.run_id, "budget knobs are part of the run id"
    other_seed = expand(load_suite(write(tmp_path, "c.yaml", text.replace("seed: 3", "seed: 4"))))[0]
    assert other_seed.run_id != first.run_id


def test_include_inherits_runs_and_budget(tmp_path):
    write(tmp_path, "base.yaml", f"""
        budget: {{epochs: 2}}
        runs:
          - {{model: {MODEL}, dataset: digits_dvs, T: 2, recipe: digits_dvs}}
        """)
    child = write(tmp_path, "child.yaml", f"""
        include: [base.yaml]
        budget: {{limit_batches: 3}}
        runs:
          - {{model: {MODEL}, dataset: digits_dvs, T: 4, recipe: digits_dvs}}
        """)
    specs = expand(load_suite(child))
    assert [s.T for s in specs] == [2, 4]
    assert all(s.epochs == 2 and s.limit_batches == 3 for s in specs)


def test_include_cycle_is_an_error(tmp_path):
    write(tmp_path, "a.yaml", "include: [b.yaml]\n")
    write(tmp_path, "b.yaml", "include: [a.yaml]\n")
    with pytest.raises(SuiteError, match="include cycle"):
        load_suite(tmp_path / "a.yaml")


def test_unknown_key_names_file_line_field_and_allowed_keys(tmp_path):
    path = write(tmp_path, "bad.yaml", f"""
        grid:
          - models: [{MODEL}]
            datasets: [digits_dvs]
            seed: [1]
        """)
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    message = str(err.value)
    assert f"{path}: line 5: field grid.0.seed" in message
    assert "seeds" in message and "Extra inputs are not permitted" in message


def test_wrong_type_names_the_line(tmp_path):
    path = write(tmp_path, "bad.yaml", """
        budget:
          epochs: many
        """)
    with pytest.raises(SuiteError, match=r"line 3: field budget.epochs"):
        load_suite(path)


def test_unknown_model_suggests_close_names_with_its_line(tmp_path):
    path = write(tmp_path, "bad.yaml", """
        grid:
          - models: [qkformer_2_256.cifar10dvs, msvit_4_384.cifar1000]
            datasets: [digits]
            recipe: digits
        """)
    with pytest.raises(SuiteError) as err:
        expand(load_suite(path))
    message = str(err.value)
    assert f"{path}: line 3: field grid.0.models.1" in message
    assert "unknown model 'msvit_4_384.cifar1000'" in message and "msvit_4_384.cifar100" in message


def test_unknown_dataset_and_recipe_list_valid_choices(tmp_path):
    bad_dataset = write(tmp_path, "d.yaml", f"runs:\n  - {{model: {MODEL}, dataset: mnist}}\n")
    with pytest.raises(SuiteError, match=r"line 2: field runs.0.dataset: unknown dataset 'mnist'.*digits_dvs"):
        expand(load_suite(bad_dataset))
    bad_recipe = write(tmp_path, "r.yaml", f"runs:\n  - {{model: {MODEL}, dataset: digits, recipe: fast}}\n")
    with pytest.raises(SuiteError, match=r"unknown recipe 'fast'.*valid recipes: .*digits"):
        expand(load_suite(bad_recipe))


def test_recipe_defaults_to_the_models_own_then_the_datasets(tmp_path):
    path = write(tmp_path, "s.yaml", f"""
        runs:
          - {{model: {MODEL}, dataset: cifar10dvs}}
          - {{model: {MODEL}, dataset: digits_dvs}}
        """)
    own, other = expand(load_suite(path))
    assert own.recipe == "qkformer_cifar10dvs" and own.T == 16
    assert other.recipe == "digits_dvs"


@pytest.mark.parametrize("suite", sorted(Path("suites").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_suites_validate(suite):
    from harness.weights.catalog import active_catalog

    specs = expand(load_suite(suite))
    # released.yaml holds one run per weights catalog entry: none while the catalog is empty
    assert specs or (suite.name == "released.yaml" and not active_catalog().entries), f"{suite} expands to no runs"


def test_unknown_model_override_names_its_line_and_the_valid_ones(tmp_path):
    path = write(tmp_path, "bad.yaml", f"""
        grid:
          - models: [{MODEL}]
            datasets: [digits_dvs]
            recipe: digits_dvs
            variants:
              ok: {{}}
              typo: {{stage12_atn: "P+P"}}
        """)
    with pytest.raises(SuiteError) as err:
        expand(load_suite(path))
    message = str(err.value)
    assert f"{path}: line 8: field grid.0.variants.typo" in message
    assert "unknown override 'stage12_atn'" in message and "official_quirks" in message


ENERGY_RUN = f"""
    runs:
      - {{model: {MODEL}, dataset: digits_dvs, T: 2, recipe: digits_dvs}}
    """


@pytest.mark.parametrize("value", [16, 1000, "all", 0])
@pytest.mark.filterwarnings("ignore:.*budget.energy_images")  # the small-sample warning has its own test
def test_the_suites_energy_images_reaches_the_specs_and_their_run_ids(tmp_path, value):
    default = expand(load_suite(write(tmp_path, "a.yaml", ENERGY_RUN)))[0]
    assert default.energy_images == "all"  # the whole eval split unless the budget says otherwise
    own = expand(load_suite(write(tmp_path, "b.yaml", f"budget: {{energy_images: {value}}}\n"
                                  + textwrap.dedent(ENERGY_RUN))))[0]
    assert own.energy_images == value
    assert (own.run_id == default.run_id) == (value == "all")
    with_flag = expand(load_suite(tmp_path / "b.yaml"), Budget(epochs=2))[0]  # another knob leaves it alone
    assert with_flag.energy_images == value
    assert expand(load_suite(tmp_path / "b.yaml"), Budget(energy_images=7))[0].energy_images == 7


@pytest.mark.filterwarnings("ignore:.*budget.energy_images")  # the small-sample warning has its own test
def test_an_included_suites_energy_images_is_kept_unless_the_file_sets_its_own(tmp_path):
    write(tmp_path, "base.yaml", "budget: {energy_images: 16}\n")
    child = write(tmp_path, "child.yaml", "include: [base.yaml]\nbudget: {epochs: 2}\n" + textwrap.dedent(ENERGY_RUN))
    assert expand(load_suite(child))[0].energy_images == 16
    own = write(tmp_path, "own.yaml", "include: [base.yaml]\nbudget: {energy_images: 0}\n"
                + textwrap.dedent(ENERGY_RUN))
    assert expand(load_suite(own))[0].energy_images == 0


def test_fewer_than_1000_energy_images_is_a_sample_and_says_so(tmp_path):
    small = write(tmp_path, "b.yaml", "budget:\n  energy_images: 64\n" + textwrap.dedent(ENERGY_RUN))
    with pytest.warns(UserWarning, match=r"budget.energy_images 64: .* a sample of 64 images, fewer than the 1000"):
        expand(load_suite(small))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expand(load_suite(write(tmp_path, "c.yaml", "budget:\n  energy_images: 1000\n" + textwrap.dedent(ENERGY_RUN))))
    negative = write(tmp_path, "d.yaml", "budget:\n  energy_images: -1\n" + textwrap.dedent(ENERGY_RUN))
    with pytest.raises(SuiteError, match=r"line 2: field budget.energy_images"):
        load_suite(negative)


