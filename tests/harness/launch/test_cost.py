"""Expected run cost (forward FLOPs x training images) and the local launcher starting the longest runs first."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.data import dataset_info, model_input_shape
from harness.engine.spec import TrainSpec
from harness.launch.cost import expected_costs, forward_flops
from harness.launch.local import run_suite
from harness.launch.worker import train_spec
from harness.metrics.perf import step_flops
from harness.suite import expand, load_suite

SMOKE = Path(__file__).resolve().parents[3] / "suites" / "smoke.yaml"

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


def _cpu_forward_flops(run: TrainSpec) -> int:
    """The estimate as it was counted before the meta device: the whole model, built and run on the CPU."""
    recipe = run.resolved_recipe()
    model = run.create_model(recipe).eval()
    frame = model_input_shape(run.dataset, recipe.data)
    shape = (1, run.time_steps(), *frame) if dataset_info(run.dataset)["kind"] == "dvs" else (1, *frame)
    with torch.no_grad():
        return step_flops(lambda: model(torch.zeros(shape)))


# one run per family and neuron kind: LIF, PLIF, MultiSpike (SDT v3), TernaryIF (SWformer), padded BN (SDT v2)
FAMILIES = [("msvit_4_384.cifar10", "digits"), ("qkformer_2_256.cifar10dvs", "digits_dvs"),
            ("sdtv3_5m.in1k", "digits"), ("swformer_4_384.cifar10", "digits"), ("sdtv2_10_384.in1k", "digits_dvs"),
            ("spikingresformer_dvsg.dvs128", "digits_dvs"), ("sdt_2_512.cifar10", "digits")]


def test_the_meta_device_count_equals_the_full_cpu_forward_and_keeps_the_order():
    specs = {(s.model, s.dataset): s for s in expand(load_suite(SMOKE))}
    runs = [train_spec(specs[family]) for family in FAMILIES]
    counted = [forward_flops(run, run.resolved_recipe()) for run in runs]
    assert counted == [_cpu_forward_flops(run) for run in runs]
    assert len(set(counted)) == len(counted), "distinct models: the order is decided by the counts alone"


class _DataDependent(nn.Module):
    """A model whose forward branches on a value: it cannot run on the meta device."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * 16 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return self.linear(x) if bool(x.sum() >= 0) else self.linear(x).neg()


def test_a_model_that_cannot_run_on_the_meta_device_is_counted_on_the_cpu(monkeypatch):
    monkeypatch.setattr(TrainSpec, "create_model", lambda self, recipe: _DataDependent())
    run = TrainSpec(model="sdt_2_512.cifar10", dataset="digits", recipe="digits")
    assert forward_flops(run, run.resolved_recipe()) == 2 * 3 * 16 * 16 * 10
