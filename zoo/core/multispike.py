"""The integer-valued MultiSpike neuron ("I-LIF", integer training) of SDT v3 / E-SpikeFormer.

Forward: ``round(clamp(x, 0, D)) / norm`` -- an integer spike count in 0..D, divided by ``norm`` (D by default;
1 keeps the counts, as the official heads do). Backward: straight through inside the clamp window, 0 outside.
Stateless and without a time recurrence, so it applies to ``[T, B, ...]`` or ``[B, ...]`` alike.

The two official implementations differ at the edges, and both are available (``variant``):

- ``"base"`` (``Model_Base/models.py``): ``torch.round`` (ties to even: 0.5 -> 0, 2.5 -> 2), gradient on the
  closed window ``[0, D]``;
- ``"large"`` (``Model_Large/spikformer.py``): ``floor(x + 0.5)`` after the clamp (ties up: 0.5 -> 1,
  2.5 -> 3), gradient on the open window ``(0, D)``.
"""

from __future__ import annotations

from typing import Literal

import torch

from zoo.core.neuron import SpikingNeuron

Variant = Literal["base", "large"]
VARIANTS = ("base", "large")


class MultiSpike(SpikingNeuron):
    """Integer spikes ``round(clamp(x, 0, D)) / norm`` with a straight-through gradient inside ``[0, D]``.

    ``D`` is the largest spike count (4 in the papers' "1x4" models, 8 for the "1x8" checkpoints); ``norm``
    defaults to ``D`` (outputs in ``[0, 1]``); ``variant`` picks the official rounding and gradient window.
    """

    def __init__(self, D: int = 4, norm: float | None = None, variant: Variant = "base") -> None:
        super().__init__()
        if D < 1:
            raise ValueError(f"MultiSpike D must be >= 1 (the largest spike count), got {D}")
        if variant not in VARIANTS:
            raise ValueError(f"MultiSpike variant must be one of {VARIANTS}, got {variant!r}")
        self.D = int(D)
        self.norm = float(D if norm is None else norm)
        self.variant: Variant = variant

    @property
    def spike_unit(self) -> float:  # type: ignore[override]
        """An output of ``k / norm`` is ``k`` spikes: spike-driven inference emits them over ``D`` virtual steps."""
        return 1.0 / self.norm

    @property
    def max_count(self) -> int:  # type: ignore[override]
        return self.D

    def extra_repr(self) -> str:
        return f"D={self.D}, norm={self.norm:g}, variant={self.variant}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        counts = IntegerSpike.apply(x, self.D, self.variant == "large")
        return counts if self.norm == 1.0 else counts / self.norm

    def spike_counts(self, output: torch.Tensor) -> torch.Tensor:
        """The integer spike count of each neuron (0..D): an output times ``norm``."""
        return output * self.norm


class IntegerSpike(torch.autograd.Function):
    """``round(clamp(x, 0, D))`` in one node; backward passes the gradient where ``x`` lies in the window."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, D: int, half_up: bool) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.D, ctx.half_up = D, half_up
        clamped = x.clamp(0, D)
        return clamped.add_(0.5).floor_() if half_up else clamped.round_()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        if ctx.half_up:  # open window (0, D)
            inside = (x > 0) & (x < ctx.D)
        else:  # closed window [0, D]
            inside = (x >= 0) & (x <= ctx.D)
        return grad_out * inside.to(grad_out.dtype), None, None

