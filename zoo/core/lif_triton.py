"""The multi-step LIF as two Triton kernels (GPU path of ``zoo.core.LIF``).

Same maths, same operation order and the same saved tensor (the pre-spike membrane ``H``) as ``FusedLIF``:
each program owns a block of neurons and walks the T steps in registers, forward and (reversed) backward,
so the membrane never travels through memory between steps. Arithmetic is fp32 whatever the storage dtype;
divisions are IEEE-rounded (``div_rn``) so results match the CPU paths to float rounding. ``H`` is kept in
fp32 even for bf16/fp16 inputs, so the backward's reset mask agrees with the forward's spikes.
With ``TRITON_INTERPRET=1`` set before this module is imported the kernels run on CPU tensors (the tests);
they use only Triton builtins (no ``@jit`` helpers such as ``tl.zeros``), so that works even when Triton itself
was imported earlier without the variable.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from zoo.core.surrogate import Surrogate

SURROGATE_IDS = {"sigmoid": 0, "atan": 1}
BLOCK = 1024


@triton.jit
def _lif_forward(x_ptr, spike_ptr, h_ptr, v_ptr, N, T, tau, v_threshold, rest,
                 HARD: tl.constexpr, DECAY_INPUT: tl.constexpr, KEEP_V: tl.constexpr, BLOCK_N: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = offs < N
    v = tl.full([BLOCK_N], 0.0, tl.float32) + rest
    idx = offs - N
    for _ in range(T):
        idx += N
        x = tl.load(x_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        if DECAY_INPUT:
            h = tl.math.div_rn(x - (v - rest), tau) + v
        else:
            h = v - tl.math.div_rn(v - rest, tau) + x
        s = (h >= v_threshold).to(tl.float32)
        if HARD:
            v = h - h * s + rest * s
        else:
            v = h - v_threshold * s
        tl.store(spike_ptr + idx, s.to(spike_ptr.dtype.element_ty), mask=mask)
        tl.store(h_ptr + idx, h.to(h_ptr.dtype.element_ty), mask=mask)
        if KEEP_V:
            tl.store(v_ptr + idx, v.to(v_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _lif_backward(h_ptr, grad_spike_ptr, grad_v_ptr, grad_x_ptr, N, T, last_offset, tau, leak, v_threshold, rest,
                  alpha, atan_scale, half_alpha, HARD: tl.constexpr, DECAY_INPUT: tl.constexpr,
                  DETACH_RESET: tl.constexpr,
                  HAS_GRAD_V: tl.constexpr, SURROGATE: tl.constexpr, BLOCK_N: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = offs < N
    grad_next = tl.full([BLOCK_N], 0.0, tl.float32)  # dL/dH[t+1]
    idx = offs + last_offset + N
    for i in range(T):
        idx -= N
        h = tl.load(h_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        if SURROGATE == 0:
            sig = 1.0 / (1.0 + tl.exp(-((h - v_threshold) * alpha)))
            sg = sig * (1.0 - sig) * alpha
        else:
            z = (h - v_threshold) * atan_scale
            sg = (1.0 / (z * z + 1.0)) * half_alpha
        # dV[t]/dH[t]
        if DETACH_RESET:
            if HARD:
                slope = (h < v_threshold).to(tl.float32)
            else:
                slope = tl.full([BLOCK_N], 1.0, tl.float32)
        else:
            if HARD:
                slope = (h < v_threshold).to(tl.float32) + sg * (rest - h)
            else:
                slope = 1.0 - v_threshold * sg
        grad_h = sg * tl.load(grad_spike_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        if HAS_GRAD_V:
            grad_h += tl.load(grad_v_ptr + idx, mask=mask, other=0.0).to(tl.float32) * slope
        if i > 0:
            grad_h += grad_next * leak * slope
        grad_next = grad_h
        if DECAY_INPUT:
            grad_h = tl.math.div_rn(grad_h, tau)
        tl.store(grad_x_ptr + idx, grad_h.to(grad_x_ptr.dtype.element_ty), mask=mask)


def _grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, BLOCK),)


class TritonLIF(torch.autograd.Function):
    """``FusedLIF``'s contract (inputs, outputs, saved ``H``) computed by the Triton kernels above."""

    @staticmethod
    def forward(ctx, x, tau, v_threshold, v_reset, decay_input, detach_reset, surrogate: Surrogate, keep_v_seq):
        x = x.contiguous()
        T, n = x.shape[0], x[0].numel()
        spikes, h_seq = torch.empty_like(x), torch.empty_like(x, dtype=torch.float32)
        v_seq = torch.empty_like(x) if keep_v_seq else x.new_empty(0)
        rest = 0.0 if v_reset is None else v_reset
        if x.numel():
            _lif_forward[_grid(n)](x, spikes, h_seq, v_seq if keep_v_seq else spikes, n, T, tau, v_threshold, rest,
                                   HARD=v_reset is not None, DECAY_INPUT=decay_input, KEEP_V=keep_v_seq,
                                   BLOCK_N=BLOCK)
        ctx.save_for_backward(h_seq)
        ctx.params = (tau, v_threshold, v_reset, decay_input, detach_reset, surrogate)
        ctx.input_dtype = x.dtype
        if not keep_v_seq:
            ctx.mark_non_differentiable(v_seq)
        return spikes, v_seq

    @staticmethod
    def backward(ctx, grad_spikes, grad_v_seq):
        (h_seq,) = ctx.saved_tensors
        tau, v_threshold, v_reset, decay_input, detach_reset, surrogate = ctx.params
        grad_spikes = torch.zeros_like(h_seq) if grad_spikes is None else grad_spikes.contiguous()
        has_grad_v = grad_v_seq is not None and grad_v_seq.numel() == h_seq.numel()
        grad_v = grad_v_seq.contiguous() if has_grad_v else grad_spikes
        grad_x = torch.empty_like(h_seq, dtype=ctx.input_dtype)
        T, n = h_seq.shape[0], h_seq[0].numel()
        if h_seq.numel():
            alpha = surrogate.alpha
            _lif_backward[_grid(n)](h_seq, grad_spikes, grad_v, grad_x, n, T, (T - 1) * n, tau, 1.0 - 1.0 / tau,
                                    v_threshold, 0.0 if v_reset is None else v_reset, alpha,
                                    math.pi / 2.0 * alpha, alpha / 2.0,
                                    HARD=v_reset is not None, DECAY_INPUT=decay_input, DETACH_RESET=detach_reset,
                                    HAS_GRAD_V=has_grad_v, SURROGATE=SURROGATE_IDS[surrogate.name], BLOCK_N=BLOCK)
        return grad_x, None, None, None, None, None, None, None
