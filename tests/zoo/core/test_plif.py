"""The learnt-tau PLIF equals spikingjelly 2.0's multi-step ParametricLIFNode, forward and backward (w included)."""

import itertools
import math

import pytest
import torch
from spikingjelly.activation_based import neuron, surrogate

from zoo.core import LIF, PLIF

SETTINGS = list(itertools.product(
    [2.0, 3.0],            # init_tau
    [0.0, None],           # v_reset (hard / soft)
    [True, False],         # decay_input
    [True, False],         # detach_reset
    ["atan", "sigmoid"],   # surrogate
))


def _spikingjelly(init_tau, v_reset, decay_input, detach_reset, sur, w):
    fn = surrogate.ATan() if sur == "atan" else surrogate.Sigmoid()
    node = neuron.ParametricLIFNode(init_tau=init_tau, decay_input=decay_input, v_reset=v_reset,
                                    surrogate_function=fn, detach_reset=detach_reset, step_mode="m",
                                    store_v_seq=True)
    node.w.data.fill_(w)
    return node


def _ours(init_tau, v_reset, decay_input, detach_reset, sur, w, path):
    node = PLIF(init_tau, v_reset=v_reset, decay_input=decay_input, detach_reset=detach_reset, surrogate=sur,
                path=path, store_v_seq=True)
    node.w.data.fill_(w)
    return node


def _run(node, x, grad_s, grad_v):
    x = x.detach().clone().requires_grad_()
    spikes = node(x)
    ((spikes * grad_s).sum() + (node.v_seq * grad_v).sum()).backward()
    return spikes.detach(), node.v_seq.detach(), x.grad, node.w.grad


@pytest.mark.parametrize("T", [1, 4, 16])
@pytest.mark.parametrize("path", ["fused", "reference"])
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(map(str, s)))
def test_equals_spikingjelly_parametric_lif(setting, path, T):
    gen = torch.Generator().manual_seed(T)
    x = torch.randn((T, 3, 5, 4), generator=gen) * 2.5 + 0.5
    grad_s, grad_v = torch.randn_like(x), torch.randn_like(x)
    w = -math.log(setting[0] - 1.0) + 0.3  # moved off the init so that tau is not a round number
    expected = _run(_spikingjelly(*setting, w), x, grad_s, grad_v)
    got = _run(_ours(*setting, w, path), x, grad_s, grad_v)
    for name, e, g in zip(("spikes", "membrane", "input grad", "w grad"), expected, got):
        assert torch.allclose(e, g, atol=2e-5, rtol=1e-5), f"{name} differs for {setting}, T={T}"
    assert 0 < expected[0].mean() < 1
    # one step from rest without decayed input: H = X does not depend on tau
    assert (expected[3].abs() > 0) == (T > 1 or setting[2])


def test_w_gradient_with_spikes_only_loss_matches_reference():
    """Training use: spikes feed the next layer, v_seq is not used; fused and reference agree on w's gradient."""
    x = torch.randn(6, 32) * 2
    grad = torch.randn_like(x)
    grads = []
    for path in ("fused", "reference"):
        node = PLIF(path=path)
        (node(x) * grad).sum().backward()
        grads.append(node.w.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)
    assert grads[0].abs() > 0


def test_init_tau_two_equals_the_fixed_lif_until_w_moves():
    x = torch.randn(4, 10) * 2
    assert torch.equal(PLIF(init_tau=2.0, surrogate="atan")(x), LIF(tau=2.0, surrogate="atan")(x))
    assert PLIF(init_tau=2.0).w.item() == 0.0 and PLIF(init_tau=3.0).w.item() == pytest.approx(-math.log(2.0))


def test_w_is_a_learnt_scalar_named_like_the_official_checkpoints():
    node = PLIF()
    assert dict(node.named_parameters()).keys() == {"w"} and node.w.shape == ()
