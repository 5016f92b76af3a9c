"""The ternary IF neuron equals the official SWformer ``MultiStepNegIFNode``, forward and backward.

The reference below is written from the official definition (bic-L/Spiking-Wavelet-Transformer, ``neuron.py``,
backend 'torch'), with spikingjelly's own Sigmoid surrogate: per step ``v = v + x``;
``s = sg(v - v_th) - sg(-(v + 0.5 + 1e-3))``; ``v = (1 - |s'|) v + s' * 0`` with ``s' = s`` (detach_reset False)
or ``s.detach()``.
"""

import pytest
import torch
from spikingjelly.activation_based import surrogate

from harness.metrics.firing import FiringRates
from zoo.core import TernaryIF


def _official(x, v_threshold, detach_reset):
    sg = surrogate.Sigmoid(alpha=4.0)
    v, spikes = 0.0, []
    for t in range(x.shape[0]):
        v = v + x[t]
        s = sg(v - v_threshold) - sg(-(v + 0.5 + 1e-3))
        s_d = s.detach() if detach_reset else s
        v = (1.0 - s_d.abs()) * v + s_d * 0.0
        spikes.append(s)
    return torch.stack(spikes)


def _run(fn, x, grad):
    x = x.detach().clone().requires_grad_()
    spikes = fn(x)
    (spikes * grad).sum().backward()
    return spikes.detach(), x.grad


@pytest.mark.parametrize("T", [1, 4, 16])
@pytest.mark.parametrize("path", ["fused", "reference"])
@pytest.mark.parametrize("v_threshold", [1.0, 0.5])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_equals_official_neg_if_node(T, path, v_threshold, detach_reset):
    gen = torch.Generator().manual_seed(T)
    x = torch.randn((T, 3, 5, 4), generator=gen, dtype=torch.float64) * 0.8
    grad = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    want = _run(lambda x: _official(x, v_threshold, detach_reset), x, grad)
    got = _run(TernaryIF(v_threshold, detach_reset=detach_reset, path=path), x, grad)
    assert torch.equal(got[0], want[0])
    torch.testing.assert_close(got[1], want[1], rtol=1e-12, atol=1e-12)
    assert (want[0] == 1).any() and (want[0] == -1).any() and (want[0] == 0).any()


def test_negative_threshold_is_fixed_and_both_signs_reset():
    x = torch.tensor([[0.7, -0.5, -0.5011, 2.0], [0.4, -0.0011, 0.2, 0.1]])
    spikes = TernaryIF(v_threshold=1.0)(x)
    # step 0: 0.7 stays, -0.5 stays (above -0.501), -0.5011 fires -1, 2.0 fires +1
    # step 1: 1.1 fires +1, -0.5011 fires -1, reset neurons start again from 0
    assert spikes.tolist() == [[0.0, 0.0, -1.0, 1.0], [1.0, -1.0, 0.0, 0.0]]
    assert TernaryIF(v_threshold=0.5)(torch.tensor([[0.5], [-0.5]])).tolist() == [[1.0], [0.0]]


def test_the_reset_passes_its_gradient_unless_detached():
    x = torch.tensor([[1.2], [0.3]], requires_grad=True)
    TernaryIF(path="fused")(x)[1].sum().backward()
    attached = x.grad.clone()
    x.grad = None
    TernaryIF(path="fused", detach_reset=True)(x)[1].sum().backward()
    assert attached[0].item() != 0.0 and x.grad[0].item() == 0.0


def test_firing_rate_counts_negative_spikes_as_events():
    neuron = TernaryIF()
    x = torch.tensor([[2.0, -2.0, 0.0, 0.0]])
    with FiringRates(torch.nn.Sequential(neuron)) as rates:
        neuron(x)
    assert rates.overall() == 0.5


def test_unknown_path_is_rejected():
    with pytest.raises(ValueError, match="path"):
        TernaryIF(path="triton")
