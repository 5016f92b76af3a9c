"""Fast mode's zoo paths (``use_fast_paths``): the LIF's fast blocks and ``SeqFlat`` on a repeated input give the
exact path's numbers up to rounding, are taken where they apply, and leave every other case on the exact path."""

import itertools

import pytest
import torch
from torch import nn

import zoo
import zoo.core.lif as lif_module
from zoo.core import LIF, PLIF, SeqFlat, conv_bn, layout_keeping_mean, lif_cpu, use_fast_paths
from zoo.models.sdt import SpikingHead

COVERED = list(itertools.product([2.0, 3.0], [1.0, 0.5], [0.0, None], [True, False], ["sigmoid", "atan"]))


def _spikes_and_grad(lif: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_()
    spikes = lif(x)
    spikes.backward(grad)
    return spikes.detach(), x.grad


@pytest.mark.parametrize("setting", COVERED, ids=lambda s: "-".join(map(str, s)))
def test_fast_lif_equals_exact_up_to_rounding(setting):
    tau, vth, v_reset, decay_input, sur = setting
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(4, 3, 40, generator=gen) * 2.5 + 0.5
    grad = torch.randn(x.shape, generator=gen)
    exact = LIF(tau, vth, v_reset, decay_input, True, sur)
    fast = LIF(tau, vth, v_reset, decay_input, True, sur)
    fast.fast = True
    want, got = _spikes_and_grad(exact, x, grad), _spikes_and_grad(fast, x, grad)
    assert torch.equal(want[0], got[0]) and 0 < want[0].mean() < 1
    assert torch.allclose(want[1], got[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fast_lif_takes_the_fast_blocks_and_keeps_dtype_and_layout(dtype, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the exact blocks ran in fast mode")

    monkeypatch.setattr(lif_module, "_forward_block", refuse)
    monkeypatch.setattr(lif_module, "_backward_block", refuse)
    images = torch.randn(4 * 2, 6, 5, 5).to(dtype).contiguous(memory_format=torch.channels_last)
    x = images.unflatten(0, (4, 2)).requires_grad_()
    lif = LIF()
    lif.fast = True
    spikes = lif(x)
    spikes.backward(torch.ones_like(spikes))
    assert spikes.dtype == x.grad.dtype == dtype
    assert spikes.stride() == x.stride() == x.grad.stride()


@pytest.mark.parametrize("make", [
    lambda: PLIF(),                             # a learnt tau
    lambda: LIF(detach_reset=False),            # the reset's gradient kept
    lambda: LIF(v_reset=-0.2),                  # a non-zero reset potential
    lambda: LIF(store_v_seq=True),              # the membrane is an output
], ids=["plif", "attached-reset", "reset-minus-0.2", "store-v-seq"])
def test_fast_flag_keeps_the_exact_path_where_the_fast_blocks_do_not_apply(make):
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(4, 2, 30, generator=gen) * 2
    grad = torch.randn(x.shape, generator=gen)
    exact, fast = make(), make()
    fast.fast = True
    for want, got in zip(_spikes_and_grad(exact, x, grad), _spikes_and_grad(fast, x, grad)):
        assert torch.equal(want, got)


def test_seqflat_runs_a_repeated_input_once_in_fast_mode():
    torch.manual_seed(0)
    exact = conv_bn(3, 8, 3)
    fast = conv_bn(3, 8, 3)
    fast.load_state_dict(exact.state_dict())
    use_fast_paths(fast)
    batches = []
    fast[0].register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    images = torch.randn(2, 3, 6, 6).contiguous(memory_format=torch.channels_last)
    x_exact = images.unsqueeze(0).expand(4, *images.shape).requires_grad_()
    x_fast = images.unsqueeze(0).expand(4, *images.shape).requires_grad_()
    want, got = exact(x_exact), fast(x_fast)
    assert batches == [2]  # B images, not T*B
    assert got.shape == want.shape == (4, 2, 8, 6, 6)
    assert got[0].is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(want, got, atol=1e-5)
    upstream = torch.randn(want.shape, generator=torch.Generator().manual_seed(7))
    want.backward(upstream)
    got.backward(upstream)
    assert torch.allclose(exact[0].weight.grad, fast[0].weight.grad, rtol=1e-4, atol=1e-5)
    assert torch.allclose(exact[1].running_mean, fast[1].running_mean, atol=1e-6)


def test_seqflat_fast_mode_leaves_an_input_that_varies_over_time_alone():
    fast = use_fast_paths(SeqFlat(nn.Identity()))
    seen = []
    fast[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    fast(torch.randn(4, 2, 3))
    assert seen == [8]


def _grad_as_it_arrives(fn, x: torch.Tensor, upstream: torch.Tensor | None = None) -> torch.Tensor:
    """The gradient ``fn(x)``'s backward hands to ``x``, as it arrives (a leaf's ``.grad`` is re-laid out to the
    leaf's strides by autograd, which would hide the layout)."""
    inner = x.detach().clone().requires_grad_().mul(1)
    arrived = []
    inner.register_hook(arrived.append)
    out = fn(inner)
    out.backward(torch.ones_like(out) if upstream is None else upstream)
    return arrived[0]


@pytest.mark.parametrize("dims", [(3,), (-1,), (2, 3), (0, 3)])
def test_layout_keeping_mean_equals_the_mean_and_returns_its_gradient_in_the_input_layout(dims):
    gen = torch.Generator().manual_seed(9)
    images = torch.randn(4 * 2, 6, 5, 5, generator=gen).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    x = images.unflatten(0, (4, 2)).flatten(3)  # the heads' [T, B, C, N] token view of a channels-last membrane
    assert torch.equal(x.mean(dims), layout_keeping_mean(x, dims))
    upstream = torch.randn(x.mean(dims).shape, generator=gen).to(torch.bfloat16)
    plain = _grad_as_it_arrives(lambda t: t.mean(dims), x, upstream)
    kept = _grad_as_it_arrives(lambda t: layout_keeping_mean(t, dims), x, upstream)
    assert torch.equal(plain, kept)  # the same values, bit for bit
    assert kept.stride() == x.stride()
    if dims in ((3,), (-1,)):  # what the heads take: autograd's own gradient comes back contiguous
        assert plain.is_contiguous() and not kept.is_contiguous()


def test_layout_keeping_mean_of_a_strided_view_gives_a_plain_gradient():
    base = torch.randn(4, 6, 10, requires_grad=True)
    view = base[:, :, ::2]  # not dense: no layout to keep
    layout_keeping_mean(view, (2,)).sum().backward()
    assert torch.equal(base.grad[:, :, ::2], torch.full((4, 6, 5), 0.2)) and not base.grad[:, :, 1::2].any()


@pytest.mark.parametrize("pool_then_neuron", [True, False])
def test_spiking_head_keeps_a_channels_last_gradient_in_fast_mode_only(pool_then_neuron):
    torch.manual_seed(0)
    exact = SpikingHead(6, 3, pool_then_neuron)
    fast = use_fast_paths(SpikingHead(6, 3, pool_then_neuron))
    fast.load_state_dict(exact.state_dict())
    fast.lif.fast = False  # the neuron's own fast path rounds differently: this test is about the mean
    x = (torch.randn(4 * 2, 6, 5, 5) * 3).contiguous(memory_format=torch.channels_last).unflatten(0, (4, 2))
    want, got = _grad_as_it_arrives(exact, x), _grad_as_it_arrives(fast, x)
    assert torch.equal(want, got) and want.abs().sum() > 0
    assert got.stride() == x.stride()
    if pool_then_neuron:  # the mean meets the membrane first: autograd's own gradient comes back contiguous
        assert want.is_contiguous()


def test_use_fast_paths_marks_every_zoo_layer_and_exact_models_stay_exact():
    model = zoo.create_model("spikformer_4_384.cifar10", depth=1, dim=32, heads=2, T=2)
    layers = [m for m in model.modules() if isinstance(m, (SeqFlat, LIF))]
    assert layers and not any(m.fast for m in layers)
    sdt = zoo.create_model("sdt_2_512.cifar10", depth=1, dim=32, heads=2, T=2)
    assert not use_fast_paths(sdt, enabled=False).head.fast and use_fast_paths(sdt).head.fast
    use_fast_paths(model)
    assert all(m.fast for m in layers)
    use_fast_paths(model, enabled=False)
    assert not any(m.fast for m in layers)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("setting", COVERED[::3], ids=lambda s: "-".join(map(str, s)))
def test_compiled_cpu_loops_equal_the_fast_blocks_up_to_rounding(setting, dtype, monkeypatch):
    """``lif_cpu`` (one compiled pass per layer) against ``_forward_block_fast``/``_backward_block_fast``."""
    if lif_cpu.library() is None:
        pytest.skip("no C compiler here: the fast blocks run instead")
    tau, vth, v_reset, decay_input, sur = setting
    gen = torch.Generator().manual_seed(8)
    x = (torch.randn(4, 3, 700, generator=gen) * 2.5 + 0.5).to(dtype)
    grad = torch.randn(x.shape, generator=gen).to(dtype)
    lif = LIF(tau, vth, v_reset, decay_input, True, sur)
    lif.fast = True
    compiled = _spikes_and_grad(lif, x, grad)
    monkeypatch.setattr(lif_cpu, "applies", lambda *tensors: False)
    blocked = _spikes_and_grad(lif, x, grad)
    _assert_equal_up_to_rounding(compiled, blocked, 1e-5 if dtype == torch.float32 else 1e-2)


def _assert_equal_up_to_rounding(compiled: tuple[torch.Tensor, ...], blocked: tuple[torch.Tensor, ...],
                                 tolerance: float) -> None:
    """Spikes and input gradients of the compiled loops against the fast blocks: other rounding (a fused
    multiply-add) may flip a membrane sitting on the threshold, rarely, and only there."""
    assert torch.isfinite(compiled[1]).all()
    same = (compiled[0] == blocked[0]).all(0)
    assert same.float().mean() > 0.99
    scale = blocked[1].float().abs().max()
    error = (compiled[1].float() - blocked[1].float())[:, same].abs().max()
    assert error <= scale * tolerance


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("surrogate", ["sigmoid", "atan"])
def test_compiled_cpu_loops_stay_finite_far_from_the_threshold(surrogate, dtype, monkeypatch):
    """Membranes hundreds of thresholds away (large event counts): the surrogate's slope is tiny, never NaN."""
    if lif_cpu.library() is None:
        pytest.skip("no C compiler here: the fast blocks run instead")
    gen = torch.Generator().manual_seed(3)
    x = (torch.randn(4, 2, 600, generator=gen) * 300.0).to(dtype)
    grad = torch.randn(x.shape, generator=gen).to(dtype)
    lif = LIF(1.5, 1.0, 0.0, True, True, surrogate)
    lif.fast = True
    compiled = _spikes_and_grad(lif, x, grad)
    monkeypatch.setattr(lif_cpu, "applies", lambda *tensors: False)
    blocked = _spikes_and_grad(lif, x, grad)
    _assert_equal_up_to_rounding(compiled, blocked, 1e-5 if dtype == torch.float32 else 1e-2)


def test_compiled_loops_are_built_once_per_machine_and_missing_compiler_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lif_cpu.library.cache_clear()
    try:
        if lif_cpu.library() is None:
            pytest.skip("no C compiler here")
        built = list((tmp_path / "spikebench" / "kernels").iterdir())
        assert len(built) == 1 and built[0].suffix == ".so"  # no source or temporary file left
        lif_cpu.library.cache_clear()
        monkeypatch.setattr(lif_cpu, "_build", lambda *args: pytest.fail("rebuilt a cached library"))
        assert lif_cpu.library() is not None
        lif_cpu.library.cache_clear()
        monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
        assert lif_cpu.library() is None
        x = torch.randn(4, 2, 50).requires_grad_()
        lif = LIF()
        lif.fast = True
        lif(x).sum().backward()  # the fast blocks
        assert x.grad is not None
    finally:
        lif_cpu.library.cache_clear()
