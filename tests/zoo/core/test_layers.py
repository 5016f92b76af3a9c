"""The T*B-flattened building blocks keep time and batch apart where they must."""

import pytest
import torch
from torch import nn

from zoo.core import (LIF, PLIF, ConvBNLIF, LinearBN, MaxPool, MultiSpike, conv_bn, mean_time_tokens, neuron_modules,
                      time_major)


def test_conv_bn_matches_per_step_conv_with_shared_statistics():
    block = conv_bn(3, 8, kernel=3).eval()
    x = torch.randn(4, 2, 3, 8, 8)
    y = block(x)
    assert y.shape == (4, 2, 8, 8, 8)
    for t in range(4):
        assert torch.allclose(y[t], block[1](block[0](x[t])), atol=1e-6)


def test_conv_bn_training_statistics_span_time_and_batch():
    block = conv_bn(2, 2, kernel=1)
    x = torch.randn(4, 3, 2, 5, 5)
    y = block(x)
    per_channel_mean = y.transpose(0, 2).reshape(2, -1).mean(1)
    assert torch.allclose(per_channel_mean, torch.zeros(2), atol=1e-5)


def test_conv_bnlif_emits_binary_spikes_with_input_shape():
    unit = ConvBNLIF(3, 6, kernel=3)
    out = unit(torch.randn(2, 4, 3, 6, 6))
    assert out.shape == (2, 4, 6, 6, 6)
    assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_linear_bn_keeps_token_layout():
    y = LinearBN(5, 7)(torch.randn(2, 3, 4, 5))
    assert y.shape == (2, 3, 4, 7)


def test_maxpool_halves_space():
    assert MaxPool()(torch.randn(2, 3, 4, 8, 8)).shape == (2, 3, 4, 4, 4)


def test_mean_over_tokens_then_time():
    x = torch.arange(2 * 1 * 3 * 2, dtype=torch.float32).view(2, 1, 3, 2)
    assert torch.allclose(mean_time_tokens(x, token_dims=(-1,)), x.mean(-1).mean(0))


def test_time_major_static_repeats_and_dvs_transposes():
    img = torch.randn(2, 3, 8, 8)
    rep = time_major(img, 4, "static", 3)
    assert rep.shape == (4, 2, 3, 8, 8) and torch.equal(rep[3], img)
    frames = torch.randn(2, 5, 2, 8, 8)
    assert torch.equal(time_major(frames, 5, "dvs", 2)[1], frames[:, 1])


@pytest.mark.parametrize("x, kind, message", [
    (torch.randn(3, 8, 8), "static", r"\[B, 3, H, W\]"),
    (torch.randn(2, 1, 8, 8), "static", r"\[B, 3, H, W\]"),
    (torch.randn(2, 4, 2, 8, 8), "dvs", r"\[B, T=5, 2, H, W\]"),
])
def test_time_major_names_expected_shape(x, kind, message):
    with pytest.raises(ValueError, match=message):
        time_major(x, 5, kind, 3 if kind == "static" else 2)


def test_neuron_modules_finds_every_neuron_for_hooks():
    net = torch.nn.Sequential(ConvBNLIF(1, 2), ConvBNLIF(2, 2), LIF())
    names = [name for name, _ in neuron_modules(net)]
    assert names == ["0.lif", "1.lif", "2"]


def test_neuron_modules_finds_every_neuron_type_of_the_core():
    net = torch.nn.Sequential(LIF(), torch.nn.Identity(), PLIF(), MultiSpike())
    assert [name for name, _ in neuron_modules(net)] == ["0", "2", "3"]


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("spiking_input", [True, False], ids=["spikes", "real-valued"])
def test_compact_input_conv_gives_autograd_gradients_exactly(dims, spiking_input):
    """conv_bn's conv keeps spike inputs as uint8 for backward; numbers equal the plain nn.Conv exactly."""
    from zoo.core.layers import SpikeConv1d, SpikeConv2d

    torch.manual_seed(0)
    shape = (6, 5, 9) if dims == 1 else (6, 5, 7, 7)
    x = torch.randn(shape)
    x = (x > 0.3).float() + (x > 1.0).float() if spiking_input else x
    compact = (SpikeConv1d if dims == 1 else SpikeConv2d)(5, 8, 3, 2, 1, bias=True)
    plain = (nn.Conv1d if dims == 1 else nn.Conv2d)(5, 8, 3, 2, 1, bias=True)
    plain.load_state_dict(compact.state_dict())
    grad = torch.randn_like(plain(x))
    results = []
    for conv in (compact, plain):
        xi = x.clone().requires_grad_()
        out = conv(xi)
        out.backward(grad)
        results.append((out, xi.grad, conv.weight.grad, conv.bias.grad))
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("shape", [(6, 5), (4, 7, 5), (2, 3, 9, 5), (16, 64, 96)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("spiking_input", [True, False], ids=["spikes", "real-valued"])
def test_compact_input_linear_gives_autograd_gradients_exactly(shape, bias, spiking_input):
    """LinearBN's linear keeps spike inputs as uint8 for backward; outputs and gradients equal nn.Linear's exactly."""
    from zoo.core.layers import SpikeLinear

    torch.manual_seed(0)
    x = torch.randn(shape)
    x = (x > 0.3).float() + (x > 1.0).float() if spiking_input else x
    compact, plain = SpikeLinear(shape[-1], 24, bias=bias), nn.Linear(shape[-1], 24, bias=bias)
    plain.load_state_dict(compact.state_dict())
    grad = torch.randn(*shape[:-1], 24)
    results = []
    for linear in (compact, plain):
        xi = x.clone().requires_grad_()
        out = linear(xi)
        out.backward(grad)
        results.append((out, xi.grad, linear.weight.grad) + ((linear.bias.grad,) if bias else ()))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_compact_input_linear_saves_spikes_as_uint8():
    from torch.autograd.graph import saved_tensors_hooks

    linear = LinearBN(4, 4).linear
    saved = []
    with saved_tensors_hooks(lambda t: saved.append(t.dtype) or t, lambda t: t):
        linear((torch.rand(2, 3, 4) > 0.5).float())
        linear(torch.randn(2, 3, 4))
    assert saved[0] == torch.uint8 and torch.uint8 not in saved[2:]


def test_compact_input_conv_saves_spikes_as_uint8():
    from torch.autograd.graph import saved_tensors_hooks

    conv = conv_bn(4, 4, 3)[0]
    saved = []
    with saved_tensors_hooks(lambda t: saved.append(t.dtype) or t, lambda t: t):
        conv((torch.rand(2, 4, 6, 6) > 0.5).float())
        conv(torch.randn(2, 4, 6, 6))
    assert saved == [torch.uint8, torch.float32, torch.float32, torch.float32]
