"""suites/controlled.yaml: every family at a matched size under one recipe and T, so that architecture is the
only difference between its runs."""

from pathlib import Path

import pytest

import zoo
from harness.data import dataset_info
from harness.launch.worker import train_spec
from harness.recipe import model_input_kwargs
from harness.suite import RunSpec, expand, load_suite

SUITE = Path(__file__).resolve().parents[3] / "suites" / "controlled.yaml"
FAMILIES = {"msvit", "qkformer", "spikformer", "sdt", "sdt_v2", "sdt_v3", "spikingresformer", "swformer",
            "sglformer", "spikingformer"}
BANDS = {"cifar100": (7.0e6, 10.0e6), "dvs128": (1.5e6, 2.5e6)}  # parameters: about 7-10M, about 2M


@pytest.fixture(scope="module")
def specs() -> list[RunSpec]:
    return expand(load_suite(SUITE))


def _parameters(spec: RunSpec) -> int:
    """The parameter count of the model a run trains, built as the engine builds it (recipe's input channels,
    the dataset's classes, the run's overrides)."""
    train = train_spec(spec)
    info = dataset_info(spec.dataset)
    kwargs = {**model_input_kwargs(train.resolved_recipe().data, info["kind"]), **spec.overrides}
    model = zoo.create_model(spec.model, T=spec.T, num_classes=info["num_classes"], **kwargs)
    return sum(p.numel() for p in model.parameters())


def test_every_family_runs_on_every_dataset_with_three_seeds(specs):
    configurations: dict[tuple, set[int]] = {}
    for spec in specs:
        configurations.setdefault((spec.dataset, spec.model, str(spec.overrides)), set()).add(spec.seed)
    assert all(seeds == {0, 1, 2} for seeds in configurations.values())
    for dataset in BANDS:
        families = [zoo.model_card(model).family for d, model, _ in configurations if d == dataset]
        assert sorted(families) == sorted(FAMILIES), dataset  # each family once per dataset


def test_all_runs_of_a_dataset_share_one_recipe_and_T_4(specs):
    assert {spec.T for spec in specs} == {4}
    assert {spec.dataset for spec in specs} == set(BANDS)
    for dataset in BANDS:
        runs = [spec for spec in specs if spec.dataset == dataset]
        assert len({(spec.recipe, spec.recipe_hash) for spec in runs}) == 1, dataset
        assert all(not spec.recipe_overrides and not spec.data_options for spec in runs), dataset
        assert all(spec.epochs is None and spec.subset is None and spec.limit_batches is None for spec in runs)


def test_every_configuration_has_a_parameter_count_inside_its_band(specs):
    for spec in {(s.model, s.dataset, str(s.overrides)): s for s in specs}.values():
        low, high = BANDS[spec.dataset]
        assert low <= _parameters(spec) <= high, (spec.model, spec.dataset, spec.overrides)
