"""The hook counter (``LayerCounter``) gives the reference dispatcher counter's (``OpCounter``) numbers on every
zoo family, static images and event frames, in both conventions."""

import pytest
import torch

import zoo
from harness.metrics.counter import LayerCounter
from harness.metrics.energy import calibrate_batch_norm
from harness.metrics.ops import OpCounter

# the smoke suite's scaled-down configurations (each family's own blocks), plus E-SpikeFormer Large
FAMILIES = [
    ("msvit_4_384.cifar10", {"widths": [32, 32, 64], "depths": [0, 1, 1], "heads": 2}, 16),
    ("qkformer_4_384.cifar10", {"widths": [16, 32, 64], "depths": [1, 1, 1], "heads": 2}, 16),
    ("spikformer_4_384.cifar10", {"dim": 64, "depth": 1, "heads": 4}, 16),
    ("sdt_2_512.cifar10", {"dim": 64, "depth": 1}, 16),
    ("sdtv2_10_384.in1k", {"dims": [8, 16, 192, 192], "heads": 1, "blocks": [1, 1]}, 32),
    ("spikingresformer_tistar.cifar10", {"planes": [16, 32, 64], "heads": [1, 2, 4], "depths": [1, 1, 1],
                                         "group_size": 16, "img_size": 16}, 16),
    ("swformer_4_384.cifar10", {"dim": 64, "depths": 1}, 16),
    ("sdtv3_5m.in1k", {"dims": [8, 16, 32, 40], "blocks": [1, 1]}, 32),
    ("sdtv3_83m.in1k", {"dims": [16, 32, 64], "depth": 1, "heads": 2}, 32),
    ("msvit_2_256.cifar10dvs", {"widths": [16, 32, 64], "depths": [0, 1, 1], "heads": 2, "stem": "cifar"}, 16),
    ("spikformer_2_256.cifar10dvs", {"dim": 64, "depth": 1, "heads": 4, "pools": [False, False, True, True]}, 16),
    ("sdt_2_256.cifar10dvs", {"dim": 64, "depth": 1}, 16),
    ("spikingresformer_dvsg.dvs128", {"planes": [16, 32, 64], "heads": [1, 2, 4], "depths": [1, 1, 1],
                                      "group_size": 16, "img_size": 16}, 16),
    ("sglformer_4_384.cifar10", {"dim": 48, "heads": 4, "img_size": 16}, 16),
    ("sglformer_3_256.dvs128", {"dim": 48, "heads": 4, "img_size": 16, "stem": "cifar"}, 16),
    ("sglformer_8_512.in1k", {"dim": 32, "heads": 2, "depths": 3}, 32),
    ("spikingformer_4_384.cifar10", {"dim": 64, "depth": 1, "heads": 4}, 16),
    ("spikingformer_2_256.cifar10dvs", {"dim": 64, "depth": 1, "heads": 4, "pools": [False, False, True, True],
                                        "official_quirks": False}, 16),
]


def _inputs(model, size: int, batches: int = 2, batch: int = 2) -> list[torch.Tensor]:
    """Seeded N(0, 1) images, or event frames holding counts 0..3 (DVS frames hold counts above 1)."""
    gen = torch.Generator().manual_seed(1)
    if model.input_kind == "dvs":
        return [torch.randint(0, 4, (batch, model.T, model.in_channels, size, size), generator=gen).float()
                for _ in range(batches)]
    return [torch.randn(batch, model.in_channels, size, size, generator=gen) for _ in range(batches)]


def _count(counter_cls, model, inputs):
    with torch.no_grad(), counter_cls(model, model.T) as counter:
        for x in inputs:
            model(x)
    return counter.tallies, counter.paper_tallies


def _assert_same(reference: dict, fast: dict) -> None:
    assert set(fast) == set(reference)
    for key, ref in reference.items():
        got = vars(fast[key])
        for field, value in vars(ref).items():
            expected = value if isinstance(value, str) else pytest.approx(value, rel=1e-9, abs=1e-9, nan_ok=True)
            assert got[field] == expected, (key, field)


@pytest.mark.parametrize("name,overrides,size", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_the_hook_counter_equals_the_dispatcher_counter_on_every_family(name, overrides, size):
    torch.manual_seed(0)
    model = zoo.create_model(name, T=min(zoo.model_card(name).T, 4), **overrides).eval()
    inputs = _inputs(model, size)
    calibrate_batch_norm(model, inputs)  # normalised inputs, so that neurons fire (and lazy constants are built)
    reference_ops, reference_paper = _count(OpCounter, model, inputs)
    fast_ops, fast_paper = _count(LayerCounter, model, inputs)
    assert any(t.op_class == "AC" and t.count > 0 for t in reference_ops.values())
    _assert_same(reference_ops, fast_ops)
    _assert_same(reference_paper, fast_paper)
