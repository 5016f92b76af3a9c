"""NeuroBench's metrics, computed by the neurobench package, set against our dispatcher-level counts."""

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import zoo
from harness.metrics import measure_energy
from harness.metrics.energy import calibrate_batch_norm
from harness.metrics.neurobench_metrics import NEUROBENCH_KEYS, NeuroBenchPass, neurobench_metrics

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
import engine_nets  # noqa: E402  (registers the tiny test models)


def _firing_model(name: str, images: torch.Tensor, **overrides) -> tuple[nn.Module, DataLoader]:
    """A seeded random model whose BatchNorms are calibrated on ``images`` (so its neurons fire)."""
    torch.manual_seed(0)
    model = zoo.create_model(name, **overrides)
    loader = DataLoader(TensorDataset(images, torch.zeros(len(images), dtype=torch.long)), batch_size=2)
    calibrate_batch_norm(model, (x for x, _ in loader))
    return model, loader


def _binary_input_modules(model: nn.Module, loader: DataLoader) -> dict[str, bool]:
    """For each Conv/Linear module: whether every input it saw was -1, 0 or 1 (NeuroBench's test for spikes)."""
    binary: dict[str, bool] = {}

    def hook(name):
        def record(module, args):
            x = args[0]
            binary[name] = binary.get(name, True) and bool(((x == 0) | (x == 1) | (x == -1)).all())
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    with torch.no_grad():
        for x, _ in loader:
            model(x)
    for h in handles:
        h.remove()
    return binary


def test_neurobench_block_has_its_keys_and_counts_the_footprint():
    images = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    model, loader = _firing_model(engine_nets.STATIC, images)
    nb = neurobench_metrics(model, loader)
    assert set(NEUROBENCH_KEYS) <= set(nb)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert nb["footprint_bytes"] == params + buffers
    assert nb["connection_sparsity"] == 0.0  # no zero weight in a random init
    assert 0.0 < nb["activation_sparsity"] < 1.0


def test_neurobench_effective_acs_against_ours_on_a_small_spikformer():
    """NeuroBench's effective ACs equal ours on exactly the Conv/Linear modules whose inputs are binary spikes.

    The rest of our ``ops`` ACs is work NeuroBench does not see, and the test checks each part is real:
    - functional ops: SSA's ``Q K^T`` and ``(Q K^T) V`` matmuls (no nn.Module), column sums, residual additions;
    - layers on integer spike counts (Spikformer's spike residual ``x + attn(x)`` holds 2s): NeuroBench calls an
      input spiking only if every value is -1, 0 or 1, so it files such a layer's binarised count under MACs,
      where we count ACs with multiplicity (a 2 is two accumulations).
    Both skip zero (padded) inputs; NeuroBench also skips zero weights, of which a random init has none.
    """
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    model, loader = _firing_model("spikformer_4_384.cifar10", images, dim=64, depth=1, heads=4)
    binary = _binary_input_modules(model, loader)
    ours = measure_energy(model, (x for x, _ in loader))
    nb = neurobench_metrics(model, loader)

    module_rows = [r for r in ours.rows if r.layer in binary and r.kind in ("conv", "matmul")]
    same_view = sum(r.count for r in module_rows if r.op_class == "AC" and binary[r.layer])
    assert nb["effective_acs"] == pytest.approx(same_view, rel=1e-9)

    functional = sum(r.count for r in ours.rows if r.op_class == "AC" and r.layer not in binary)
    integer_inputs = sum(r.count for r in module_rows if r.op_class == "AC" and not binary[r.layer])
    attention = sum(r.count for r in ours.rows if r.layer.endswith("attn") and r.kind == "matmul")
    assert attention > 0 and integer_inputs > 0
    assert ours.acs == pytest.approx(same_view + functional + integer_inputs, rel=1e-9)
    assert nb["effective_acs"] < ours.acs


SAME_PASS = [  # linear and conv layers, grouped and depthwise convs (SDT v3), event frames
    ("spikformer_4_384.cifar10", {"dim": 64, "depth": 1, "heads": 4, "T": 2}, (3, 16, 16)),
    ("sdtv3_5m.in1k", {"dims": [8, 16, 32, 40], "blocks": [1, 1]}, (3, 32, 32)),
    ("msvit_2_256.cifar10dvs", {"widths": [16, 32, 64], "depths": [0, 1, 1], "heads": 2, "stem": "cifar", "T": 2},
     (2, 2, 16, 16)),
]


@pytest.mark.parametrize("counter", ["hooks", "reference"])
@pytest.mark.parametrize("name,overrides,shape", SAME_PASS, ids=[n for n, _, _ in SAME_PASS])
def test_neurobench_in_the_energy_pass_gives_the_package_benchmark_numbers(name, overrides, shape, counter):
    # the same-pass metrics (the package's objects, SynapticOperations by its definition on the device) equal
    # Benchmark.run's own second pass, and the NeuroBench work adds nothing to our op counts
    gen = torch.Generator().manual_seed(2)
    images = torch.randint(0, 3, (5, *shape), generator=gen).float() if len(shape) == 4 else \
        torch.randn(5, *shape, generator=gen)
    model, loader = _firing_model(name, images, **overrides)
    alone = measure_energy(model, (x for x, _ in loader), counter=counter)
    together = measure_energy(model, (x for x, _ in loader), neurobench=True, counter=counter)
    expected = neurobench_metrics(model, loader)
    assert together.neurobench.keys() == expected.keys()
    for key, value in expected.items():
        assert together.neurobench[key] == pytest.approx(value, rel=1e-12), key
    assert together.rows == alone.rows and together.paper_rows == alone.paper_rows
    assert together.firing_per_layer == alone.firing_per_layer


@pytest.mark.parametrize("name,overrides,shape", SAME_PASS[:2], ids=[n for n, _, _ in SAME_PASS[:2]])
def test_neurobench_in_the_energy_pass_skips_zero_weights_as_the_package_does(name, overrides, shape):
    # a pruned model: some layers with zero weights (their inputs reach fewer outputs), the others dense, so both
    # ways of counting effective operations (any fan-out, the same fan-out everywhere) meet the package's numbers
    gen = torch.Generator().manual_seed(3)
    model, loader = _firing_model(name, torch.randn(5, *shape, generator=gen), **overrides)
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    with torch.no_grad():
        for layer in layers[::2]:
            layer.weight.mul_(torch.rand(layer.weight.shape, generator=gen) > 0.3)
    together = measure_energy(model, (x for x, _ in loader), neurobench=True)
    expected = neurobench_metrics(model, loader)
    assert expected["connection_sparsity"] > 0
    for key, value in expected.items():
        assert together.neurobench[key] == pytest.approx(value, rel=1e-12), key


def test_activation_sparsity_on_the_device_is_the_packages_on_relus_and_uneven_batches():
    # the package's activation layers include nn.ReLU (its own list) beside the zoo's neurons; batches of 2, 2, 1
    # weigh the per-batch sparsities by their sizes, as Benchmark.run does
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3), nn.ReLU()).eval()
    images = torch.randn(5, 4, generator=torch.Generator().manual_seed(5))
    loader = DataLoader(TensorDataset(images, torch.zeros(5, dtype=torch.long)), batch_size=2)
    expected = neurobench_metrics(model, loader)
    bench = NeuroBenchPass(model)
    with torch.no_grad(), bench.active():
        for x, _ in loader:
            bench.batch_done(model(x), x)
    got = bench.results()
    assert 0.0 < expected["activation_sparsity"] < 1.0
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
