"""The IF neuron equals spikingjelly 2.0's multi-step IFNode (spikes, membrane and input gradient) on both paths."""

import itertools

import pytest
import torch
from spikingjelly.activation_based import neuron, surrogate

from zoo.core import IF, LIF, SpikingNeuron

SETTINGS = list(itertools.product(
    [1.0, 0.5],            # v_threshold
    [0.0, -0.25, None],    # v_reset (hard to 0, hard to a negative rest, soft)
    [True, False],         # detach_reset
    ["sigmoid", "atan"],   # surrogate
))
SHAPES = [(7,), (2, 5), (2, 3, 4, 4)]
ALPHA = {"sigmoid": 4.0, "atan": 2.0}


def _spikingjelly(x, vth, v_reset, detach_reset, sur):
    fn = surrogate.Sigmoid(alpha=ALPHA[sur]) if sur == "sigmoid" else surrogate.ATan(alpha=ALPHA[sur])
    node = neuron.IFNode(v_threshold=vth, v_reset=v_reset, surrogate_function=fn, detach_reset=detach_reset,
                         step_mode="m", store_v_seq=True)
    return node(x), node.v_seq


def _ours(x, vth, v_reset, detach_reset, sur, path):
    node = IF(vth, v_reset, detach_reset, sur, path=path, store_v_seq=True)
    return node(x), node.v_seq


def _run(fn, x, grad_s, grad_v):
    x = x.detach().clone().requires_grad_()
    spikes, v_seq = fn(x)
    ((spikes * grad_s).sum() + (v_seq * grad_v).sum()).backward()
    return spikes.detach(), v_seq.detach(), x.grad


@pytest.mark.parametrize("T", [1, 4, 12])
@pytest.mark.parametrize("path", ["fused", "reference"])
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(map(str, s)))
def test_equals_spikingjelly_ifnode(setting, path, T):
    gen = torch.Generator().manual_seed(T)
    fired = 0.0
    for shape in SHAPES:
        x = torch.randn((T, *shape), generator=gen) * 0.8 + 0.2
        grad_s, grad_v = torch.randn_like(x), torch.randn_like(x)
        expected = _run(lambda t: _spikingjelly(t, *setting), x, grad_s, grad_v)
        got = _run(lambda t: _ours(t, *setting, path), x, grad_s, grad_v)
        for name, e, g in zip(("spikes", "membrane"), expected, got):
            assert torch.equal(e, g), f"{name} differs for {setting}, T={T}, shape={shape}"
        # no leak: the gradient grows with T, and the fused backward sums in its own order (float32 rounding)
        scale = max(1.0, expected[2].abs().max().item())
        assert torch.allclose(expected[2], got[2], atol=1e-6 * scale, rtol=0), f"input grad differs for {setting}"
        fired += expected[0].mean().item()
    assert 0 < fired < len(SHAPES), "the inputs should make some, not all, neurons fire"


def test_integrates_without_leak_by_hand():
    """v_th=1: inputs 0.6, 0.6, 0.3 -> H = 0.6, 1.2 (spike, reset to 0), 0.3; a LIF (tau 2) would not fire."""
    x = torch.tensor([[0.6], [0.6], [0.3]])
    node = IF(store_v_seq=True)
    assert node(x).flatten().tolist() == [0.0, 1.0, 0.0]
    assert torch.allclose(node.v_seq.flatten(), torch.tensor([0.6, 0.0, 0.3]))
    assert LIF()(x).sum() == 0


def test_is_a_spiking_neuron_without_tau_in_its_repr():
    node = IF(v_threshold=0.5)
    assert isinstance(node, SpikingNeuron)
    assert "tau" not in repr(node) and "decay_input" not in repr(node) and "v_threshold=0.5" in repr(node)


def test_never_takes_the_triton_kernels():
    assert IF().resolved_path(torch.device("cuda")) == "fused"
    with pytest.raises(ValueError, match="IF has no Triton path"):
        IF(path="triton").resolved_path(torch.device("cuda"))
