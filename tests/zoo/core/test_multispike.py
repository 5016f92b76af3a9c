"""The integer MultiSpike neuron equals both official SDT v3 definitions, forward and backward.

The references below are written from the official definitions (BICLab/Spike-Driven-Transformer-V3):
Base ``Quant``: ``torch.round(torch.clamp(x, 0, D))``, gradient zeroed where ``x < 0`` or ``x > D``;
Large ``multispike``: ``torch.floor(torch.clamp(x, 0, D) + 0.5)``, gradient kept where ``0 < x < D``.
"""

import pytest
import torch

from zoo.core import MultiSpike

# every tie and both window edges, plus values outside and between them
EDGES = [-1.0, -1e-7, 0.0, 1e-7, 0.25, 0.5, 1.0, 1.5, 2.5, 3.5, 3.9999, 4.0, 4.0001, 4.5, 7.5, 8.0, 9.0]


def _base_reference(x, D, norm):
    counts = torch.round(torch.clamp(x, 0, D))
    grad = torch.ones_like(x)
    grad[x < 0] = 0
    grad[x > D] = 0
    return counts / norm, grad / norm


def _large_reference(x, D, norm):
    counts = torch.floor(torch.clamp(x, 0, D) + 0.5)
    grad = ((0 < x).float() * (x < D).float()).to(x.dtype)
    return counts / norm, grad / norm


REFERENCES = {"base": _base_reference, "large": _large_reference}


def _ours(x, variant, D, norm):
    x = x.clone().requires_grad_(True)
    y = MultiSpike(D=D, norm=norm, variant=variant)(x)
    y.backward(torch.ones_like(y))
    return y.detach(), x.grad


@pytest.mark.parametrize("variant", ["base", "large"])
@pytest.mark.parametrize("D,norm", [(4, None), (8, None), (4, 1), (8, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_and_gradient_equal_the_official_definition(variant, D, norm, dtype):
    torch.manual_seed(0)
    x = torch.cat([torch.tensor(EDGES, dtype=dtype), (torch.randn(2000, dtype=dtype) * 3 + 2)])
    want_y, want_grad = REFERENCES[variant](x, D, D if norm is None else norm)
    got_y, got_grad = _ours(x, variant, D, norm)
    assert torch.equal(got_y, want_y.to(dtype))
    assert torch.equal(got_grad, want_grad.to(dtype))


def test_variants_differ_exactly_at_ties_and_window_edges():
    x = torch.tensor([0.0, 0.5, 1.5, 2.5, 4.0, 3.0])
    base_y, base_grad = _ours(x, "base", 4, 1)
    large_y, large_grad = _ours(x, "large", 4, 1)
    assert base_y.tolist() == [0, 0, 2, 2, 4, 3]   # ties to even
    assert large_y.tolist() == [0, 1, 2, 3, 4, 3]  # ties up
    assert base_grad.tolist() == [1, 1, 1, 1, 1, 1]   # closed window [0, D]
    assert large_grad.tolist() == [0, 1, 1, 1, 0, 1]  # open window (0, D)


def test_outputs_are_integer_counts_over_norm_and_shape_is_kept():
    x = torch.randn(2, 3, 4, 5) * 4
    counts = MultiSpike(D=8, norm=1)(x)
    assert counts.shape == x.shape and counts.min() >= 0 and counts.max() <= 8
    assert torch.equal(counts, counts.round())
    torch.testing.assert_close(MultiSpike(D=8)(x), counts / 8)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="variant"):
        MultiSpike(variant="half")
    with pytest.raises(ValueError, match="D must be >= 1"):
        MultiSpike(D=0)
