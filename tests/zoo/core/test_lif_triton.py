"""The Triton LIF kernels equal the fused CPU path (and so spikingjelly), run by Triton's CPU interpreter."""

import importlib
import itertools
import os

import pytest
import torch

from zoo.core import LIF

pytest.importorskip("triton")

SETTINGS = list(itertools.product(
    [2.0, 3.0],            # tau
    [1.0, 0.5],            # v_threshold
    [0.0, None, -0.2],     # v_reset: hard at 0, soft, hard at a non-zero rest
    [True, False],         # decay_input
    [True, False],         # detach_reset
    ["sigmoid", "atan"],   # surrogate
))


@pytest.fixture(scope="module")
def triton_lif():
    """``TritonLIF`` with its kernels built for the interpreter (the variable is read when a kernel is defined)."""
    saved = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    import zoo.core.lif_triton as module

    yield importlib.reload(module).TritonLIF
    if saved is None:
        del os.environ["TRITON_INTERPRET"]
    else:
        os.environ["TRITON_INTERPRET"] = saved
    importlib.reload(module)


def _fused(setting, keep_v):
    lif = LIF(*setting, path="fused", store_v_seq=keep_v)
    return lambda x: (lif(x), lif.v_seq)


def _run(fn, x, grad_s, grad_v, keep_v):
    x = x.detach().clone().requires_grad_()
    spikes, v_seq = fn(x)
    loss = (spikes * grad_s).sum() + ((v_seq * grad_v).sum() if keep_v else 0)
    loss.backward()
    return spikes.detach(), (v_seq.detach() if keep_v else None), x.grad


def _settings_and_surrogate(setting):
    tau, vth, v_reset, decay, detach, sur = setting
    return (tau, vth, v_reset, decay, detach, LIF(surrogate=sur).surrogate), (tau, vth, v_reset, decay, detach, sur)


@pytest.mark.parametrize("keep_v", [True, False], ids=["with-membrane-grad", "spikes-only"])
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(map(str, s)))
def test_triton_equals_fused(triton_lif, setting, keep_v):
    kernel_args, lif_args = _settings_and_surrogate(setting)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((5, 3, 7, 11), generator=gen) * 2.5 + 0.5  # 231 neurons: a partial block
    grad_s, grad_v = torch.randn_like(x), torch.randn_like(x)
    expected = _run(_fused(lif_args, keep_v), x, grad_s, grad_v, keep_v)
    got = _run(lambda t: triton_lif.apply(t, *kernel_args, keep_v), x, grad_s, grad_v, keep_v)
    assert 0 < expected[0].mean() < 1, "some, not all, neurons should fire"
    for name, e, g in zip(("spikes", "membrane", "input grad"), expected, got):
        if e is not None:
            assert torch.allclose(e, g, atol=1e-6, rtol=0), f"{name} differs for {setting}"


def test_triton_spans_several_blocks(triton_lif):
    """More neurons than one program's block: every block gets its own slice of every time step."""
    from zoo.core.lif_triton import BLOCK

    x = torch.randn(3, 2 * BLOCK + 5) * 2
    grad = torch.randn_like(x)
    surrogate = LIF().surrogate
    expected = _run(_fused((2.0, 1.0, 0.0, True, True, "sigmoid"), False), x, grad, grad, False)
    got = _run(lambda t: triton_lif.apply(t, 2.0, 1.0, 0.0, True, True, surrogate, False), x, grad, grad, False)
    assert torch.equal(expected[0], got[0])
    assert torch.allclose(expected[2], got[2], atol=1e-6, rtol=0)


def test_auto_path_picks_triton_only_on_cuda():
    assert LIF().resolved_path(torch.device("cuda")) == "triton"
    assert LIF().resolved_path(torch.device("cpu")) == "fused"
    assert LIF(path="fused").resolved_path(torch.device("cuda")) == "fused"


def test_triton_keeps_bf16_inputs_in_fp32(triton_lif):
    """bf16 input (autocast): spikes equal the fp32 computation; the input gradient comes back in bf16."""
    x = (torch.randn(4, 300) * 2).to(torch.bfloat16)
    surrogate = LIF().surrogate
    expected = _run(_fused((2.0, 1.0, 0.0, True, True, "sigmoid"), False), x.float(), torch.ones(4, 300), None, False)
    got = _run(lambda t: triton_lif.apply(t, 2.0, 1.0, 0.0, True, True, surrogate, False), x, torch.ones(4, 300),
               None, False)
    assert got[0].dtype == torch.bfloat16 and got[2].dtype == torch.bfloat16
    assert torch.equal(expected[0], got[0].float())
    assert torch.allclose(expected[2].to(torch.bfloat16).float(), got[2].float(), atol=1e-2, rtol=0)
