"""The shared LIF equals spikingjelly 2.0's multi-step LIFNode, and the fused path equals the reference."""

import itertools

import pytest
import torch
from spikingjelly.activation_based import neuron, surrogate

import zoo.core.lif as lif_module
from zoo.core import LIF, PLIF

SETTINGS = list(itertools.product(
    [2.0, 3.0],            # tau
    [1.0, 0.5],            # v_threshold
    [0.0, None],           # v_reset (hard / soft)
    [True, False],         # decay_input
    [True, False],         # detach_reset
    ["sigmoid", "atan"],   # surrogate
))
SHAPES = [(7,), (2, 5), (2, 3, 4, 4)]
ALPHA = {"sigmoid": 4.0, "atan": 2.0}


def _spikingjelly(x, tau, vth, v_reset, decay_input, detach_reset, sur):
    fn = surrogate.Sigmoid(alpha=ALPHA[sur]) if sur == "sigmoid" else surrogate.ATan(alpha=ALPHA[sur])
    node = neuron.LIFNode(tau=tau, decay_input=decay_input, v_threshold=vth, v_reset=v_reset,
                          surrogate_function=fn, detach_reset=detach_reset, step_mode="m", store_v_seq=True)
    return node(x), node.v_seq


def _ours(x, tau, vth, v_reset, decay_input, detach_reset, sur, path):
    lif = LIF(tau, vth, v_reset, decay_input, detach_reset, sur, path=path, store_v_seq=True)
    return lif(x), lif.v_seq


def _run(fn, x, grad_s, grad_v):
    x = x.detach().clone().requires_grad_()
    spikes, v_seq = fn(x)
    ((spikes * grad_s).sum() + (v_seq * grad_v).sum()).backward()
    return spikes.detach(), v_seq.detach(), x.grad


@pytest.mark.parametrize("T", [1, 4, 10, 16])
@pytest.mark.parametrize("path", ["fused", "reference"])
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(map(str, s)))
def test_equals_spikingjelly(setting, path, T):
    gen = torch.Generator().manual_seed(T)
    fired = 0.0
    for shape in SHAPES:
        x = torch.randn((T, *shape), generator=gen) * 2.5 + 0.5
        grad_s, grad_v = torch.randn_like(x), torch.randn_like(x)
        expected = _run(lambda t: _spikingjelly(t, *setting), x, grad_s, grad_v)
        got = _run(lambda t: _ours(t, *setting, path), x, grad_s, grad_v)
        for name, e, g in zip(("spikes", "membrane", "input grad"), expected, got):
            assert torch.allclose(e, g, atol=1e-6, rtol=0), f"{name} differs for {setting}, T={T}, shape={shape}"
        fired += expected[0].mean().item()
    assert 0 < fired < len(SHAPES), "the inputs should make some, not all, neurons fire"


@pytest.mark.parametrize("setting", SETTINGS[::5], ids=lambda s: "-".join(map(str, s)))
def test_fused_equals_reference_spikes_only(setting):
    """The usual training case: only spikes are used downstream (no membrane gradient)."""
    x = torch.randn(4, 8, 16) * 2
    grad = torch.randn_like(x)
    results = []
    for path in ("fused", "reference"):
        xi = x.clone().requires_grad_()
        s = LIF(*setting, path=path)(xi)
        (s * grad).sum().backward()
        results.append((s, xi.grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6, rtol=0)


def test_hard_reset_semantics_by_hand():
    """tau=2, v_th=1: inputs 1.5, 1.5, 0.4 -> H = 0.75 (no spike), 1.125 (spike, reset to 0), 0.2."""
    x = torch.tensor([[1.5], [1.5], [0.4]])
    lif = LIF(store_v_seq=True)
    assert lif(x).flatten().tolist() == [0.0, 1.0, 0.0]
    assert torch.allclose(lif.v_seq.flatten(), torch.tensor([0.75, 0.0, 0.2]))


def test_soft_reset_subtracts_threshold():
    x = torch.tensor([[3.0], [0.0]])
    lif = LIF(v_reset=None, store_v_seq=True)
    assert lif(x).flatten().tolist() == [1.0, 0.0]
    assert torch.allclose(lif.v_seq.flatten(), torch.tensor([0.5, 0.25]))


def test_state_resets_between_calls():
    lif = LIF()
    x = torch.full((3, 2), 0.9)
    first, second = lif(x), lif(x)
    assert torch.equal(first, second)


def test_time_dim_moves_the_iterated_axis():
    x = torch.randn(3, 5, 4) * 2
    moved = LIF(time_dim=1)(x)
    expected = LIF()(x.transpose(0, 1)).transpose(0, 1)
    assert torch.equal(moved, expected)


def test_auto_path_is_fused_and_paths_are_forcible():
    assert LIF().resolved_path() == "fused"
    assert LIF().resolved_path(torch.device("cpu")) == "fused"
    assert LIF(path="reference").resolved_path() == "reference"
    with pytest.raises(ValueError, match="path"):
        LIF(path="cuda")


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="tau"):
        LIF(tau=1.0)
    with pytest.raises(ValueError, match="surrogate"):
        LIF(surrogate="relu")


def test_no_grad_inference_matches_training_forward():
    x = torch.randn(4, 6) * 2
    with torch.no_grad():
        inference = LIF()(x)
    assert torch.equal(inference, LIF()(x.requires_grad_()).detach())


@pytest.mark.parametrize("path", ["fused", "reference"])
def test_half_precision_input_integrates_in_fp32(path):
    """Under bf16 autocast the membrane still integrates in fp32: spikes equal those of the fp32 input."""
    x = torch.randn(8, 500) * 0.6 + 0.4
    x_bf16 = x.to(torch.bfloat16)
    spikes = LIF(path=path)(x_bf16)
    assert spikes.dtype == torch.bfloat16
    assert torch.equal(spikes.float(), LIF(path=path)(x_bf16.float()))


@pytest.mark.parametrize("setting", SETTINGS[::3], ids=lambda s: "-".join(map(str, s)))
def test_fused_numbers_do_not_depend_on_the_neuron_blocking(setting, monkeypatch):
    """The fused path walks neurons in blocks; block sizes that are multiples of 32 (the widest SIMD loop) give
    bit-identical spikes, membrane and gradient (a vectorised exp rounds unlike the scalar one of a loop's tail)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, 7, 13, generator=gen) * 2.5 + 0.5  # 273 neurons per step: blocks end mid-row
    grad_s, grad_v = torch.randn_like(x), torch.randn_like(x)
    results = {}
    for block in (32, 96, 1 << 40):
        monkeypatch.setattr(lif_module, "NEURONS_PER_BLOCK", block)
        results[block] = _run(lambda t: _ours(t, *setting, "fused"), x, grad_s, grad_v)
    for block in (32, 96):
        for name, whole, blocked in zip(("spikes", "membrane", "input grad"), results[1 << 40], results[block]):
            assert torch.equal(whole, blocked), f"{name} changes with {block}-neuron blocks for {setting}"


@pytest.mark.parametrize("block", [32, 1 << 40])
def test_half_precision_gradient_equals_the_widened_input(block, monkeypatch):
    """A bf16 input runs without an fp32 copy of itself, with the numbers of that copy: spikes and gradient."""
    monkeypatch.setattr(lif_module, "NEURONS_PER_BLOCK", block)
    gen = torch.Generator().manual_seed(2)
    x = (torch.randn(4, 3, 50, generator=gen) * 2).to(torch.bfloat16)
    grad = torch.randn(x.shape, generator=gen).to(torch.bfloat16)
    for lif in (LIF(), LIF(v_reset=None, detach_reset=False), LIF(decay_input=False), PLIF()):
        low = x.clone().requires_grad_()
        spikes = lif(low)
        spikes.backward(grad)
        wide = x.clone().requires_grad_()
        widened = lif(wide.float())
        widened.backward(grad.float())
        assert spikes.dtype == low.grad.dtype == torch.bfloat16
        assert torch.equal(spikes.float(), widened), lif
        assert torch.equal(low.grad, wide.grad), lif


def test_time_rows_views_dense_steps_in_any_layout():
    images = torch.randn(6, 5, 7, 4)
    contiguous, channels_last = images.unflatten(0, (2, 3)), images.contiguous(
        memory_format=torch.channels_last).unflatten(0, (2, 3))
    for x in (contiguous, channels_last):
        rows = lif_module.time_rows(x)
        assert rows.shape == (2, 3 * 5 * 7 * 4) and rows.data_ptr() == x.data_ptr()
        assert torch.equal(rows.sort(1).values, x.flatten(1).sort(1).values)  # each row holds its own step
    assert lif_module.time_rows(torch.randn(3, 4, 5).transpose(0, 1)) is None  # time is not the outer axis
    assert lif_module.time_rows(torch.randn(3, 8)[:, ::2]) is None  # a step is not dense


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_channels_last_input_keeps_its_layout_and_numbers(dtype):
    """A channels-last input is neither copied nor reordered: outputs and gradient share its layout, spikes
    equal the contiguous input's; the gradient too, up to the last bit of the surrogate's exp."""
    images = (torch.randn(4 * 3, 5, 7, 6, generator=torch.Generator().manual_seed(3)) * 2).to(dtype)
    grad = torch.randn(images.shape, generator=torch.Generator().manual_seed(4)).to(dtype).unflatten(0, (4, 3))
    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        x = images.contiguous(memory_format=layout).unflatten(0, (4, 3)).requires_grad_()
        spikes = LIF()(x)
        spikes.backward(grad)
        assert spikes.stride() == x.stride() == x.grad.stride()
        results.append((spikes, x.grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.allclose(results[0][1].float(), results[1][1].float(), rtol=0, atol=1e-6)
