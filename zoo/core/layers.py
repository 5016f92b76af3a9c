"""Shared spiking building blocks: stateless layers applied over the flattened ``T*B`` axis.

Activations travel as ``[T, B, ...]``. Convolutions, linears, batch norms and pools see the ``[T*B, ...]``
view (so BN statistics are shared over time and batch, as in every official implementation); the LIF
sees the ``[T, B, ...]`` view.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo.core.lif import LIF


class SeqFlat(nn.Sequential):
    """Run stateless modules on ``[T, B, ...]`` by merging T and B, then splitting them again.

    In fast mode (``fast``, set by ``use_fast_paths``) an input that is the same at every step (a static image
    repeated T times, stride 0 over T) runs through the modules once, as ``[B, ...]``: a T-th of the work; batch
    norm then takes its statistics over the B distinct images (the same values, rounded differently, and an
    unbiased running variance over B instead of T*B samples).
    """

    fast: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        if self.fast and t > 1 and x.stride(0) == 0:
            y = super().forward(x[0])
            return torch.cat([y] * t).unflatten(0, (t, b))  # keeps y's memory format (channels-last)
        y = super().forward(x.flatten(0, 1))
        return y.unflatten(0, (t, b))


def _save_compactly(ctx, x: torch.Tensor, weight: torch.Tensor) -> None:
    """Save ``x`` for backward as uint8 when that is exact (spikes, spike sums), else as it is; and ``weight``."""
    packed = x.to(torch.uint8)
    ctx.input_dtype = x.dtype if torch.equal(packed.to(x.dtype), x) else None
    ctx.save_for_backward(packed if ctx.input_dtype is not None else x, weight)


def _saved_input_and_weight(ctx) -> tuple[torch.Tensor, torch.Tensor]:
    x, weight = ctx.saved_tensors
    return (x.to(ctx.input_dtype) if ctx.input_dtype is not None else x), weight


class _CompactInputConv(torch.autograd.Function):
    """A convolution that keeps its input for backward as uint8 when it holds small non-negative integers.

    Spikes (0/1) and spike sums are exact in uint8: the saved input takes a quarter of the memory, and backward
    calls the very ``convolution_backward`` autograd would, on the restored input, so gradients are identical.
    Any other input (images, membranes, attention products) is kept as it is.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        out = torch.ops.aten.convolution(x, weight, bias, stride, padding, dilation, False, [0] * len(stride), groups)
        _save_compactly(ctx, x, weight)
        ctx.conf = (stride, padding, dilation, groups, bias is not None)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = _saved_input_and_weight(ctx)
        stride, padding, dilation, groups, has_bias = ctx.conf
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], has_bias and ctx.needs_input_grad[2]]
        grads = torch.ops.aten.convolution_backward(grad_out, x, weight, [weight.shape[0]] if has_bias else None,
                                                    stride, padding, dilation, False, [0] * len(stride), groups, mask)
        return (*grads, None, None, None, None)


class _CompactInputLinear(torch.autograd.Function):
    """``F.linear`` keeping a spike input as uint8 for backward; backward runs the matrix products autograd's
    ``addmm``/``mm`` backward runs (on the ``[rows, features]`` fold of the input), so gradients are identical."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        out = nn.functional.linear(x, weight, bias)
        _save_compactly(ctx, x, weight)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = _saved_input_and_weight(ctx)
        grad2d = grad_out.reshape(-1, grad_out.shape[-1])
        grad_x = grad2d.mm(weight).view(x.shape) if ctx.needs_input_grad[0] else None
        grad_w = grad2d.t().mm(x.reshape(-1, x.shape[-1])) if ctx.needs_input_grad[1] else None
        grad_b = grad2d.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def _compact_applies(module: nn.Module, x: torch.Tensor) -> bool:
    """Training-time fp32 eager calls take the compact path (autocast and compilation keep the plain one)."""
    return (torch.is_grad_enabled() and module.weight.requires_grad and not torch.compiler.is_compiling()
            and x.dtype == module.weight.dtype and not torch.is_autocast_enabled(x.device.type))


class SpikeLinear(nn.Linear):
    """``nn.Linear`` that saves spike inputs compactly for backward (see ``_CompactInputLinear``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (_compact_applies(self, x) and x.is_contiguous()):
            return super().forward(x)
        return _CompactInputLinear.apply(x, self.weight, self.bias)


class _CompactInputMixin:
    """Route training-time calls through ``_CompactInputConv`` (same state_dict, same numbers, less memory)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compact = _compact_applies(self, x) and self.padding_mode == "zeros" and not isinstance(self.padding, str)
        if not compact:
            return super().forward(x)
        return _CompactInputConv.apply(x, self.weight, self.bias, list(self.stride), list(self.padding),
                                       list(self.dilation), self.groups)


class SpikeConv1d(_CompactInputMixin, nn.Conv1d):
    """``nn.Conv1d`` that saves spike inputs compactly for backward (see ``_CompactInputConv``)."""


class SpikeConv2d(_CompactInputMixin, nn.Conv2d):
    """``nn.Conv2d`` that saves spike inputs compactly for backward (see ``_CompactInputConv``)."""


def use_fast_paths(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Let ``model``'s zoo layers take their fast-mode paths (``SeqFlat`` on a repeated input, the fused LIF's fast
    blocks, a head's layout-keeping token mean): every module whose class declares a boolean ``fast`` flag. They
    may change the numbers' rounding; exact mode never calls this. Returns ``model``."""
    for module in model.modules():
        if isinstance(getattr(type(module), "fast", None), bool):
            module.fast = enabled
    return model


def to_channels_last(model: nn.Module) -> nn.Module:
    """``model`` with its 4-D parameters and buffers (convolution weights) in channels-last layout, the others
    as they are: ``model.to(memory_format=torch.channels_last)`` refuses a model holding a 5-D tensor (e.g.
    SpikingResformer's per-channel rates of shape [1, 1, C, 1, 1])."""
    return model._apply(lambda t: t.to(memory_format=torch.channels_last) if t.dim() == 4 else t)


class _LayoutKeepingMean(torch.autograd.Function):
    """``x.mean(dims)`` whose gradient comes back in ``x``'s memory layout.

    Autograd's own gradient of a mean is a contiguous tensor; on a channels-last activation it makes every later
    elementwise op of the backward (residual sums, batch norm, pooling) mix two layouts, which costs strided
    copies. The values are the same (the same division of the same expanded gradient), only the layout differs.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        ctx.shape, ctx.dims = x.shape, dims
        ctx.stride = x.stride() if _dense(x) else None
        return x.mean(dims)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        kept = [1 if d in ctx.dims else size for d, size in enumerate(ctx.shape)]
        expanded = grad.reshape(kept).expand(ctx.shape)
        count = math.prod(ctx.shape[d] for d in ctx.dims)
        if ctx.stride is None:
            return expanded / count, None
        out = torch.empty_strided(ctx.shape, ctx.stride, dtype=grad.dtype, device=grad.device)
        return torch.div(expanded, count, out=out), None


def _dense(x: torch.Tensor) -> bool:
    """Whether ``x``'s elements fill its storage span exactly once (any axis order): ``empty_strided`` can copy it."""
    expected = 1
    for stride, size in sorted((st, sz) for st, sz in zip(x.stride(), x.shape) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def layout_keeping_mean(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``x.mean(dims)`` (no kept dims) with its gradient in ``x``'s layout (fast mode; see ``_LayoutKeepingMean``)."""
    dims = tuple(sorted(d % x.dim() for d in dims))
    return _LayoutKeepingMean.apply(x, dims)


def conv_bn(
    cin: int,
    cout: int,
    kernel: int = 1,
    stride: int = 1,
    padding: int | None = None,
    bias: bool = False,
    dims: int = 2,
    groups: int = 1,
) -> SeqFlat:
    """Conv (1-D or 2-D) followed by BatchNorm, over ``T*B``; padding defaults to ``kernel // 2``."""
    conv_cls, bn_cls = (SpikeConv2d, nn.BatchNorm2d) if dims == 2 else (SpikeConv1d, nn.BatchNorm1d)
    pad = kernel // 2 if padding is None else padding
    return SeqFlat(conv_cls(cin, cout, kernel, stride, pad, bias=bias, groups=groups), bn_cls(cout))


class LinearBN(nn.Module):
    """``[T, B, N, C]`` -> Linear(C -> C') -> BatchNorm1d(C') over ``T*B*N`` samples -> ``[T, B, N, C']``."""

    def __init__(self, cin: int, cout: int, bias: bool = True) -> None:
        super().__init__()
        self.linear = SpikeLinear(cin, cout, bias=bias)
        self.bn = nn.BatchNorm1d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        return self.bn(y.flatten(0, -2)).view_as(y)


class MaxPool(SeqFlat):
    """3x3 / stride 2 / pad 1 max pooling over ``T*B`` (the official down-sampling pool)."""

    def __init__(self, kernel: int = 3, stride: int = 2, padding: int = 1) -> None:
        super().__init__(nn.MaxPool2d(kernel, stride, padding))


class ConvBNLIF(nn.Module):
    """conv -> BN (over ``T*B``) -> LIF (over T): the basic spiking conv unit."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, bias: bool = False,
                 dims: int = 2, lif: LIF | None = None) -> None:
        super().__init__()
        self.conv_bn = conv_bn(cin, cout, kernel, stride, bias=bias, dims=dims)
        self.lif = lif if lif is not None else LIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(self.conv_bn(x))


def spike_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SEW-style residual: the sum of two spike tensors (integer valued, not re-binarised)."""
    return a + b


def mean_time_tokens(x: torch.Tensor, token_dims: tuple[int, ...]) -> torch.Tensor:
    """Average ``[T, B, ...]`` over the given token axes, then over time: ``[B, C]`` for the head."""
    return x.mean(dim=token_dims).mean(dim=0)


def time_major(x: torch.Tensor, T: int, kind: str, channels: int, name: str = "model") -> torch.Tensor:
    """Validate a model input and bring it to ``[T, B, C, H, W]``.

    ``kind='static'``: ``[B, C, H, W]`` images repeated T times (direct encoding).
    ``kind='dvs'``: ``[B, T, C, H, W]`` event frames, transposed to time-first.
    """
    if kind == "static":
        if x.dim() != 4 or x.shape[1] != channels:
            raise ValueError(f"{name} expects images shaped [B, {channels}, H, W], got {list(x.shape)}")
        return x.unsqueeze(0).expand(T, *x.shape)
    if kind == "dvs":
        if x.dim() != 5 or x.shape[2] != channels or x.shape[1] != T:
            raise ValueError(f"{name} expects event frames shaped [B, T={T}, {channels}, H, W], got {list(x.shape)}")
        return x.transpose(0, 1)
    raise ValueError(f"unknown input kind {kind!r}; expected 'static' or 'dvs'")

