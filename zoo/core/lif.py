"""The one multi-step LIF neuron shared by every model family.

Semantics are spikingjelly's multi-step ``LIFNode`` (proven equal in tests/zoo/core):
charge ``H = V + (X - (V - v_reset)) / tau`` (decay_input) or ``H = V - (V - v_reset) / tau + X``,
fire ``S = [H >= v_threshold]``, reset ``V = H (1 - S) + v_reset S`` (hard) or ``V = H - v_threshold S``
(soft, ``v_reset=None``). The membrane starts at ``v_reset`` (0 for soft reset) on every forward call.

Three implementations of the same maths: ``reference`` (a per-step autograd graph), ``fused`` (the
whole time loop in one autograd function whose backward is written by hand and that keeps only the
pre-spike membrane ``H`` for it) and ``triton`` (``FusedLIF``'s contract as two GPU kernels, lif_triton.py).

``PLIF`` is spikingjelly's ``ParametricLIFNode``: the same neuron with ``1 / tau = sigmoid(w)`` and ``w``
learnt; the reference and fused paths also return the gradient of ``1 / tau`` (the Triton kernels have a fixed
``tau``, so a PLIF runs the fused path on CUDA too).
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
from torch import nn

from zoo.core import lif_cpu
from zoo.core.neuron import SpikingNeuron

from zoo.core.surrogate import Surrogate, make_surrogate

Path = Literal["auto", "fused", "reference", "triton"]
PATHS = ("auto", "fused", "reference", "triton")


class LIF(SpikingNeuron):
    """Multi-step leaky integrate-and-fire neuron: input ``[T, ...]`` -> spikes of the same shape.

    ``time_dim`` picks the axis that is iterated as time (0 by default). ``path`` forces the fused or
    reference implementation; ``auto`` uses the Triton kernels on CUDA tensors, the fused path elsewhere,
    and the reference while ``torch.compile`` traces (so the compiler sees and fuses plain operations).
    Set ``store_v_seq=True`` to keep the post-reset membrane of the last call in ``self.v_seq``.
    ``fast`` (set by ``zoo.core.use_fast_paths``, fast mode only) lets the fused path round differently for speed.
    """

    fast: bool = False

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        decay_input: bool = True,
        detach_reset: bool = True,
        surrogate: str = "sigmoid",
        alpha: float | None = None,
        time_dim: int = 0,
        path: Path = "auto",
        store_v_seq: bool = False,
    ) -> None:
        super().__init__()
        if tau <= 1.0:
            raise ValueError(f"LIF tau must be > 1 (got {tau}): the membrane would not decay")
        if path not in PATHS:
            raise ValueError(f"LIF path must be one of {PATHS}, got {path!r}")
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)
        self.v_reset = None if v_reset is None else float(v_reset)
        self.decay_input = bool(decay_input)
        self.detach_reset = bool(detach_reset)
        self.surrogate: Surrogate = make_surrogate(surrogate, alpha)
        self.time_dim = int(time_dim)
        self.path: Path = path
        self.store_v_seq = bool(store_v_seq)
        self.v_seq: torch.Tensor | None = None

    def extra_repr(self) -> str:
        reset = "soft" if self.v_reset is None else f"hard(v_reset={self.v_reset})"
        extra = f", time_dim={self.time_dim}" if self.time_dim != 0 else ""
        return (
            f"tau={self.tau}, v_threshold={self.v_threshold}, {reset}, decay_input={self.decay_input}, "
            f"detach_reset={self.detach_reset}, surrogate={self.surrogate.name}(alpha={self.surrogate.alpha}){extra}"
        )

    def time_axis(self) -> int:
        """Spikes run over time along ``time_dim``."""
        return self.time_dim

    def resolved_path(self, device: torch.device | None = None) -> str:
        """The implementation a call on ``device`` (default: CPU) will use."""
        if self.path != "auto":
            return self.path
        if torch.compiler.is_compiling():
            return "reference"
        return "triton" if device is not None and device.type == "cuda" and _triton_available() else "fused"

    def decay(self) -> torch.Tensor | None:
        """The learnt ``1 / tau`` as a tensor (``PLIF``), or None for the fixed ``tau``."""
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1:
            raise ValueError("LIF expects a tensor with a time axis, got a scalar")
        moved = self.time_dim != 0
        if moved:
            x = x.movedim(self.time_dim, 0)
        params = (self.tau, self.v_threshold, self.v_reset, self.decay_input, self.detach_reset, self.surrogate)
        rate = self.decay()
        path = self.resolved_path(x.device)
        if path == "triton":  # computes in fp32 and keeps H in fp32 whatever the input dtype
            from zoo.core.lif_triton import TritonLIF

            spikes, v_seq = TritonLIF.apply(x, *params, self.store_v_seq)
        else:
            # the membrane integrates in fp32 even under bf16/fp16 autocast; spikes (0/1) go back exactly
            if path == "fused":  # reads a low-precision input and writes its spikes without extra copies
                spikes, v_seq = FusedLIF.apply(x, rate, *params, self.store_v_seq, self.fast)
            else:
                x32 = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
                spikes, v_seq = lif_reference(x32, *params, rate=rate)
                spikes = spikes.to(x.dtype)
        if self.store_v_seq:
            self.v_seq = v_seq.movedim(0, self.time_dim) if moved else v_seq
        return spikes.movedim(0, self.time_dim) if moved else spikes


class PLIF(LIF):
    """spikingjelly's ``ParametricLIFNode``: a LIF whose ``1 / tau = sigmoid(w)`` is learnt (Fang et al., 2021).

    ``w`` (a 0-dim parameter, the official checkpoints' ``...w``) starts at ``-log(init_tau - 1)``; the
    charge multiplies by ``sigmoid(w)`` where the LIF divides by ``tau``.
    """

    def __init__(self, init_tau: float = 2.0, **lif_kwargs) -> None:
        super().__init__(tau=init_tau, **lif_kwargs)
        self.w = nn.Parameter(torch.as_tensor(-math.log(init_tau - 1.0)))

    def decay(self) -> torch.Tensor:
        return self.w.sigmoid()

    def resolved_path(self, device: torch.device | None = None) -> str:
        """As the LIF's, but the fused path where the LIF would take the Triton kernels (fixed ``tau`` only)."""
        path = super().resolved_path(device)
        if path == "triton":
            if self.path == "triton":
                raise ValueError("PLIF has no Triton path (its tau is learnt): use path 'auto' or 'fused'")
            return "fused"
        return path

    def extra_repr(self) -> str:
        return super().extra_repr().replace(f"tau={self.tau}", f"tau={1.0 / self.decay().item():.4g} (learnt)")


@functools.cache
def _triton_available() -> bool:
    """Whether Triton imports (it ships with CUDA builds of torch)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _charge(v: torch.Tensor, x: torch.Tensor, tau: float, v_reset: float | None, decay_input: bool,
            rate: torch.Tensor | None = None) -> torch.Tensor:
    """``H`` from ``V`` and ``X``: the leak is ``/ tau`` (LIF) or ``* rate`` (PLIF, ``rate = 1 / tau``)."""
    rest = 0.0 if v_reset is None else v_reset
    if rate is not None:
        return v + (x - (v - rest)) * rate if decay_input else v - (v - rest) * rate + x
    if decay_input:
        return v + (x - (v - rest)) / tau
    return v - (v - rest) / tau + x


def _charge_into(out: torch.Tensor, v: torch.Tensor, x: torch.Tensor, tau: float, v_reset: float | None,
                 decay_input: bool, rate: torch.Tensor | None = None) -> torch.Tensor:
    """``_charge`` written into ``out`` with the same rounding (subtracting a zero rest is exact)."""
    rest = 0.0 if v_reset is None else v_reset
    leak = (lambda t: t.mul_(rate)) if rate is not None else (lambda t: t.div_(tau))
    if decay_input:
        if rest == 0.0:
            torch.sub(x, v, out=out)
        else:
            torch.sub(x, torch.sub(v, rest, out=out), out=out)
        return leak(out).add_(v)
    torch.sub(v, rest, out=out)
    leak(out)
    torch.sub(v, out, out=out)
    return out.add_(x)


def lif_reference(x, tau, v_threshold, v_reset, decay_input, detach_reset, surrogate, rate=None):
    """Step-by-step LIF through autograd; returns (spikes, post-reset membrane), both ``[T, ...]``.

    ``rate`` (a tensor ``1 / tau``, PLIF) replaces ``tau`` when given.
    """
    v = torch.full_like(x[0], 0.0 if v_reset is None else v_reset)
    spikes, v_seq = [], []
    for t in range(x.shape[0]):
        h = _charge(v, x[t], tau, v_reset, decay_input, rate)
        s = surrogate.spike(h - v_threshold)
        s_reset = s.detach() if detach_reset else s
        if v_reset is None:
            v = h - s_reset * v_threshold
        else:
            v = h * (1.0 - s_reset) + v_reset * s_reset
        spikes.append(s)
        v_seq.append(v)
    return torch.stack(spikes), torch.stack(v_seq)


NEURONS_PER_BLOCK = 1 << 16  # the fused path walks all T steps of this many neurons while they sit in cache
# (a multiple of twice the widest SIMD width, 32 floats, so the numbers do not depend on it)


def neuron_blocks(count: int) -> list[slice]:
    """Consecutive slices of ``NEURONS_PER_BLOCK`` neurons covering ``count``."""
    size = NEURONS_PER_BLOCK
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def time_rows(t: torch.Tensor) -> torch.Tensor | None:
    """``t`` (``[T, ...]``) as a ``[T, n]`` view of its own storage when every time step is one dense block, in
    any order inside (contiguous, channels-last, ...); None otherwise."""
    steps, count = t.shape[0], t[0].numel() if t.dim() > 1 else 1
    if steps > 1 and t.stride(0) != count:
        return None
    expected = 1
    for stride, size in sorted((st, sz) for st, sz in zip(t.stride()[1:], t.shape[1:]) if sz != 1):
        if stride != expected:
            return None
        expected *= size
    return t.as_strided((steps, count), (count, 1))


def _rows_like(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``grad`` as ``time_rows`` of ``like``'s layout (a copy when its own layout differs)."""
    if grad.stride() != like.stride():
        grad = torch.empty_like(like, dtype=grad.dtype).copy_(grad)
    return time_rows(grad)


class FusedLIF(torch.autograd.Function):
    """The whole T loop as one autograd node; backward is hand-written from the saved ``H`` only.

    Forward keeps the pre-spike membrane ``H`` (one tensor the size of the input; PLIF with a learnt ``rate``
    also keeps the input). Backward computes every elementwise factor for all T at once and leaves only a
    two-op recurrence in the time loop: ``dL/dH[t] = a[t] + leak * dL/dH[t+1] * dV/dH[t]``.
    Both walk the neurons in blocks (``neuron_blocks``), each block through all T steps, so a large layer is
    read from memory once instead of once per operation; every element sees the same operations in the same
    order, so the numbers do not depend on the blocking. The membrane integrates in fp32 under bf16/fp16
    autocast; spikes (0/1) return in the input's dtype exactly. ``fast`` (fast mode) takes ``_forward_block_fast``
    and ``_backward_block_fast`` where they apply (``fast_lif_applies``): fewer passes, other rounding.
    """

    @staticmethod
    def forward(ctx, x, rate, tau, v_threshold, v_reset, decay_input, detach_reset, surrogate, keep_v_seq,
                fast=False):
        x2 = time_rows(x)
        if x2 is None:  # steps that are not dense blocks (a permuted or strided view): made contiguous once
            x = x.contiguous()
            x2 = time_rows(x)
        state = torch.promote_types(x.dtype, torch.float32)
        # outputs in the input's layout (channels-last stays channels-last): elementwise maths ignores the order
        h_seq, spikes = torch.empty_like(x, dtype=state), torch.empty_like(x)
        v_seq = torch.empty_like(h_seq) if keep_v_seq else x.new_empty(0)
        h2, s2, v2 = time_rows(h_seq), time_rows(spikes), time_rows(v_seq) if keep_v_seq else None
        rate_value = None if rate is None else rate.detach()
        ctx.fast = fast and fast_lif_applies(rate, v_reset, detach_reset, keep_v_seq)
        if ctx.fast:
            _forward_fast(x2, h2, s2, tau, v_threshold, v_reset, decay_input)
        for cols in [] if ctx.fast else neuron_blocks(x2.shape[1]):
            _forward_block(x2[:, cols], h2[:, cols], s2[:, cols], None if v2 is None else v2[:, cols],
                           tau, v_threshold, v_reset, decay_input, rate_value)
        learnt = rate is not None and ctx.needs_input_grad[1]
        ctx.save_for_backward(h_seq, spikes if learnt else None, x if learnt else None, rate_value)
        ctx.params = (tau, v_threshold, v_reset, decay_input, detach_reset, surrogate)
        ctx.input_dtype = x.dtype
        if not keep_v_seq:
            ctx.mark_non_differentiable(v_seq)
        return spikes, v_seq

    @staticmethod
    def backward(ctx, grad_spikes, grad_v_seq):
        h_seq, spikes, x, rate = ctx.saved_tensors
        tau, v_threshold, v_reset, decay_input, detach_reset, surrogate = ctx.params
        h2 = time_rows(h_seq)
        count = h2.shape[1]
        grad_s2 = _rows_like(grad_spikes, h_seq)
        grad_v2 = _rows_like(grad_v_seq, h_seq) if grad_v_seq is not None and grad_v_seq.numel() == h_seq.numel() else None
        grad_x = torch.empty_like(h_seq, dtype=ctx.input_dtype)
        grad_x2 = time_rows(grad_x)
        # a learnt 1/tau sums over every neuron: one block keeps that sum's order
        blocks = [slice(0, count)] if x is not None else neuron_blocks(count)
        if ctx.fast:
            _backward_fast(h2, grad_s2, grad_x2, tau, v_threshold, v_reset, decay_input, surrogate)
            return grad_x, None, None, None, None, None, None, None, None, None
        grad_rate = None
        for cols in blocks:
            grad_h = _backward_block(h2[:, cols], grad_s2[:, cols], None if grad_v2 is None else grad_v2[:, cols],
                                     rate, *ctx.params)
            if x is not None:
                slope = _charge_slope(h_seq, spikes, x, v_threshold, v_reset, decay_input)
                grad_rate = (grad_h.as_strided(h_seq.shape, h_seq.stride()) * slope).sum()
            if decay_input:
                grad_h = grad_h.div_(tau) if rate is None else grad_h.mul_(rate)
            grad_x2[:, cols] = grad_h
        return grad_x, grad_rate, None, None, None, None, None, None, None, None


def fast_lif_applies(rate: torch.Tensor | None, v_reset: float | None, detach_reset: bool, keep_v_seq: bool) -> bool:
    """The fast blocks cover a fixed tau, a detached reset to 0 (hard) or by subtraction (soft), no membrane
    output: every official LIF of the four CIFAR models; any other neuron keeps the exact blocks."""
    return rate is None and detach_reset and v_reset in (None, 0.0) and not keep_v_seq


def _forward_fast(x, h_seq, spikes, tau, v_threshold, v_reset, decay_input) -> None:
    """Fast mode's forward of a ``[T, n]`` layer: the compiled loops (``lif_cpu``) where they build, else the
    blocks of ``_forward_block_fast``."""
    if lif_cpu.applies(x, h_seq, spikes):
        lif_cpu.forward(x, h_seq, spikes, tau, v_threshold, v_reset, decay_input)
        return
    for cols in neuron_blocks(x.shape[1]):
        _forward_block_fast(x[:, cols], h_seq[:, cols], spikes[:, cols], tau, v_threshold, v_reset, decay_input)


def _backward_fast(h_seq, grad_spikes, grad_x, tau, v_threshold, v_reset, decay_input, surrogate) -> None:
    """Fast mode's backward of a ``[T, n]`` layer into ``grad_x``: compiled loops or ``_backward_block_fast``."""
    if lif_cpu.applies(h_seq, grad_spikes, grad_x):
        lif_cpu.backward(h_seq, grad_spikes, grad_x, tau, v_threshold, v_reset, decay_input, surrogate)
        return
    for cols in neuron_blocks(h_seq.shape[1]):
        _backward_block_fast(h_seq[:, cols], grad_spikes[:, cols], grad_x[:, cols], tau, v_threshold, v_reset,
                             decay_input, surrogate)


def _forward_block_fast(x, h_seq, spikes, tau, v_threshold, v_reset, decay_input) -> None:
    """``_forward_block`` in two passes per step (fast mode): ``H[t] = X[t] / tau + (1 - 1/tau) V[t-1]`` (the same
    charge, rounded differently), built in ``h_seq`` from the scaled input; spikes in one pass at the end."""
    leak = 1.0 - 1.0 / tau
    h_seq.copy_(x)  # widens a bf16 input (a bf16 multiply would round X / tau to bf16)
    if decay_input:
        h_seq.mul_(1.0 / tau)
    kept = torch.empty_like(h_seq[0])  # 1 where the neuron did not fire (hard) or the spike (soft)
    for t in range(h_seq.shape[0] - 1):
        h = h_seq[t]
        if v_reset is None:  # soft: V = H - v_th S
            torch.ge(h, v_threshold, out=kept)
            h_seq[t + 1].add_(h, alpha=leak).sub_(kept, alpha=leak * v_threshold)
        else:  # hard to 0: V = H (1 - S)
            torch.lt(h, v_threshold, out=kept)
            h_seq[t + 1].addcmul_(h, kept, value=leak)
    torch.ge(h_seq, v_threshold, out=spikes)


def _backward_block_fast(h_seq, grad_spikes, grad_x, tau, v_threshold, v_reset, decay_input, surrogate) -> None:
    """dL/dX of one block (fast mode, ``_forward_block_fast``'s neurons) written into ``grad_x``: the recurrence
    ``G[t] = sg[t] dL/dS[t] + leak dV[t]/dH[t] G[t+1]`` on the surrogate's slope without its constant factor, one
    fused pass per step; that factor and the charge's ``1 / tau`` scale the result as it is written out."""
    grad, scale = _surrogate_slope(h_seq, v_threshold, surrogate)
    grad.mul_(grad_spikes if grad_spikes.dtype == grad.dtype else grad_spikes.to(grad.dtype))
    leak = 1.0 - 1.0 / tau
    if v_reset is None:  # soft, detached: dV/dH = 1
        for t in range(h_seq.shape[0] - 2, -1, -1):
            grad[t].add_(grad[t + 1], alpha=leak)
    else:  # hard, detached: dV/dH = 1 - S
        below = torch.lt(h_seq[:-1], v_threshold, out=torch.empty_like(h_seq[:-1]))
        for t in range(h_seq.shape[0] - 2, -1, -1):
            grad[t].addcmul_(grad[t + 1], below[t], value=leak)
    torch.mul(grad, scale / tau if decay_input else scale, out=grad_x)


def _surrogate_slope(h_seq: torch.Tensor, v_threshold: float, surrogate: Surrogate) -> tuple[torch.Tensor, float]:
    """The surrogate's derivative at ``H - v_th`` as a new tensor and a constant factor: for the sigmoid
    ``sg (1 - sg)`` and ``alpha`` in four passes; any other surrogate its own derivative and 1."""
    if surrogate.name != "sigmoid":
        return surrogate.derivative(h_seq - v_threshold, inplace=True), 1.0
    sg = torch.mul(h_seq, surrogate.alpha).sub_(surrogate.alpha * v_threshold).sigmoid_()
    return sg.addcmul_(sg, sg, value=-1.0), surrogate.alpha


def _forward_block(x, h_seq, spikes, v_seq, tau, v_threshold, v_reset, decay_input, rate) -> None:
    """All T steps of one block of neurons (``[T, n]`` views), written into ``h_seq``, ``spikes`` and ``v_seq``."""
    # float 0/1 masks throughout: bool-tensor kernels are several times slower on CPU
    low = x.dtype != h_seq.dtype
    x = x.to(h_seq.dtype) if low else x
    v = torch.full_like(h_seq[0], 0.0 if v_reset is None else v_reset)
    spike = torch.empty_like(v) if low else None
    for t in range(x.shape[0]):
        h = _charge_into(h_seq[t], v, x[t], tau, v_reset, decay_input, rate)
        s = torch.ge(h, v_threshold, out=spike if low else spikes[t])
        if low:
            spikes[t] = s
        if v_reset is None:
            v = torch.sub(h, s, alpha=v_threshold, out=v)
        else:
            v = torch.addcmul(h, h, s, value=-1.0, out=v)
            if v_reset != 0.0:
                v.add_(s, alpha=v_reset)
        if v_seq is not None:
            v_seq[t] = v


def _backward_block(h_seq, grad_spikes, grad_v_seq, rate, tau, v_threshold, v_reset, decay_input, detach_reset,
                    surrogate) -> torch.Tensor:
    """dL/dH of one block of neurons (``[T, n]``) in the membrane's dtype, before the charge's ``1 / tau``."""
    grad_h = surrogate.derivative(h_seq - v_threshold, inplace=True)
    dv_dh = None if detach_reset else _reset_slope_attached(h_seq, grad_h, v_threshold, v_reset)
    grad_h.mul_(grad_spikes if grad_spikes.dtype == grad_h.dtype else grad_spikes.to(grad_h.dtype))
    below = torch.empty_like(grad_h[0]) if detach_reset and v_reset is not None else None
    carried = torch.empty_like(grad_h[0])
    leak = 1.0 - (1.0 / tau if rate is None else rate)
    for t in range(h_seq.shape[0] - 1, -1, -1):
        # dV[t]/dH[t]: 1 - S (hard, detached), 1 (soft, detached), or the attached slope
        slope = dv_dh[t] if dv_dh is not None else (torch.lt(h_seq[t], v_threshold, out=below) if below is not None else None)
        upstream = [grad_v_seq[t]] if grad_v_seq is not None else []
        if t + 1 < h_seq.shape[0]:
            upstream.append(torch.mul(grad_h[t + 1], leak, out=carried))
        for grad_v in upstream:
            grad_h[t].add_(grad_v) if slope is None else grad_h[t].addcmul_(grad_v, slope)
    return grad_h


def _charge_slope(h_seq: torch.Tensor, spikes: torch.Tensor, x: torch.Tensor, v_threshold: float,
                  v_reset: float | None, decay_input: bool) -> torch.Tensor:
    """dH[t]/d(1/tau) with V[t-1] held: ``X[t] - (V[t-1] - v_reset)`` (decay_input) or ``-(V[t-1] - v_reset)``.

    ``V[t-1]`` is rebuilt exactly from ``H[t-1]`` and ``S[t-1]`` (the reset is a select or a subtraction).
    """
    rest = 0.0 if v_reset is None else v_reset
    if v_reset is None:
        v_prev = h_seq - spikes * v_threshold
    else:
        v_prev = h_seq * (1.0 - spikes) + v_reset * spikes
    v_prev = torch.cat([torch.full_like(h_seq[:1], rest), v_prev[:-1]])
    minus_rel = rest - v_prev
    return minus_rel.add_(x) if decay_input else minus_rel


def _reset_slope_attached(h_seq: torch.Tensor, sg: torch.Tensor, v_threshold: float, v_reset: float | None) -> torch.Tensor:
    """dV/dH when the reset keeps its gradient: ``1 - v_th * sg`` (soft) or ``(1 - S) + (v_reset - H) * sg`` (hard)."""
    if v_reset is None:
        return 1.0 - v_threshold * sg
    return (h_seq < v_threshold).to(h_seq.dtype).addcmul_(sg, v_reset - h_seq)
