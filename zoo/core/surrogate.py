"""Surrogate gradients: a Heaviside spike forward, a smooth derivative backward.

Each surrogate exposes ``derivative(x)`` (used by the fused LIF's hand-written backward) and
``spike(x)`` (an autograd function used by the reference LIF path), so both paths share one formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Surrogate:
    """A named surrogate with its sharpness ``alpha``."""

    name: str
    alpha: float

    def derivative(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """d spike / d x evaluated at ``x = h - v_threshold``; ``inplace`` reuses ``x``'s storage."""
        y = x if inplace else x.clone()
        if self.name == "sigmoid":
            sg = y.mul_(self.alpha).sigmoid_()
            return sg.mul_(1.0 - sg).mul_(self.alpha)
        if self.name == "atan":
            return y.mul_(math.pi / 2.0 * self.alpha).square_().add_(1.0).reciprocal_().mul_(self.alpha / 2.0)
        raise ValueError(f"unknown surrogate {self.name!r}; expected one of {sorted(SURROGATES)}")

    def spike(self, x: torch.Tensor) -> torch.Tensor:
        """Heaviside(x >= 0) with this surrogate's derivative in backward."""
        return _SurrogateSpike.apply(x, self)


class _SurrogateSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: Surrogate) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.surrogate.derivative(x), None


SURROGATES = {"sigmoid": 4.0, "atan": 2.0}


def make_surrogate(name: str, alpha: float | None = None) -> Surrogate:
    """Build a surrogate by name; ``alpha`` defaults to spikingjelly's default for that name."""
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; expected one of {sorted(SURROGATES)}")
    return Surrogate(name, SURROGATES[name] if alpha is None else float(alpha))
