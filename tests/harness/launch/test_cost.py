"""Expected run cost (forward FLOPs x training images) and the local launcher starting the longest runs first."""

import math

import pytest
import torch

from harness.launch.cost import expected_costs
from harness.launch.local import run_suite
from harness.suite import expand, load_suite

SMALL = "{widths: [16, 32, 64], depths: [1, 1, 1], heads: 2}"
LARGE = "{widths: [32, 64, 128], depths: [1, 1, 2], heads: 2}"


def _entry(overrides: str = SMALL, T: int = 2, dataset: str = "digits", extra: str = "") -> str:
    return (f"{{model: qkformer_4_384.cifar10, dataset: {dataset}, T: {T}, recipe: digits, "
            f"overrides: {overrides}{extra}}}")


def _costs(tmp_path, suite_writer, runs: list[str], budget: str = "{epochs: 2}") -> list[float]:
    return expected_costs(expand(load_suite(suite_writer(tmp_path, "cost", runs, budget))))


def test_cost_follows_model_size_time_steps_and_epochs(tmp_path, suite_writer):
    small, large, longer = _costs(tmp_path, suite_writer, [_entry(), _entry(LARGE), _entry(T=4)])
    assert large > 2 * small
    assert longer == pytest.approx(2 * small, rel=0.05), "the forward runs T steps"
    twice, = _costs(tmp_path, suite_writer, [_entry()], "{epochs: 4}")
    assert twice == 2 * small


def test_cost_follows_the_images_trained_on_and_leaves_the_rng_alone(tmp_path, suite_writer):
    state = torch.random.get_rng_state()
    full, = _costs(tmp_path, suite_writer, [_entry()])
    assert torch.equal(torch.random.get_rng_state(), state), "building the model must not move the caller's RNG"
    subset, = _costs(tmp_path, suite_writer, [_entry()], "{epochs: 2, subset: 719}")
    batches, = _costs(tmp_path, suite_writer, [_entry()], "{epochs: 2, limit_batches: 3}")
    assert subset == full / 2  # digits: 1438 train images
    assert batches == full * 3 * 32 / 1438  # the digits recipe's batch of 32


def test_event_input_is_costed_on_its_frames(tmp_path, suite_writer):
    dvs = ("{model: qkformer_2_256.cifar10dvs, dataset: digits_dvs, T: 2, recipe: digits_dvs, "
           "overrides: {widths: [32, 64], depths: [1, 1], heads: 2, stem: cifar}}")
    two, four = _costs(tmp_path, suite_writer, [dvs, dvs.replace("T: 2", "T: 4")])
    assert 0 < two < math.inf, "a [1, T, 2, H, W] clip runs through the model"
    assert four == pytest.approx(2 * two, rel=0.05)


def test_seeds_share_a_cost_and_an_unbuildable_model_costs_most(tmp_path, suite_writer):
    broken = _entry("{widths: [16, 32, 64], depths: [1, 1, 1], heads: 5}")  # 16 channels do not split into 5 heads
    seeded, other_seed, unbuildable = _costs(tmp_path, suite_writer, [_entry(), _entry(extra=", seed: 1"), broken])
    assert seeded == other_seed < unbuildable == math.inf


def test_launcher_starts_the_expensive_run_first(tmp_path, suite_writer, capsys):
    runs = [_entry(), _entry(extra=", seed: 1"), _entry(LARGE)]
    suite = suite_writer(tmp_path, "order", runs, "{epochs: 1, limit_batches: 1, subset: 32, energy_images: 0}")
    specs = expand(load_suite(suite))
    outcome = run_suite(specs, tmp_path / "results", jobs=2)
    assert set(outcome.states.values()) == {"finished"}
    started = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("started")]
    assert started == [specs[2].run_id, specs[0].run_id, specs[1].run_id], "expensive first, then suite order"
