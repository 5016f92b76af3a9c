"""The ternary integrate-and-fire neuron of the Spiking Wavelet Transformer's Haar transforms (SWformer).

Semantics are the official ``MultiStepNegIFNode`` (bic-L/Spiking-Wavelet-Transformer, ``neuron.py``), proven equal
in tests/zoo/core/test_ternary.py. Per step, from ``V = 0``:
charge ``H = V + X`` (no leak), fire ``S = [H >= v_threshold] - [-(H + neg_threshold + inhibit) >= 0]`` (so +1,
0 or -1; the negative threshold is fixed at 0.5 + 1e-3 whatever ``v_threshold`` is), hard reset
``V = (1 - |S|) H + S v_reset``. Both spike terms take the surrogate's derivative in backward and, with
``detach_reset=False`` (the official setting), the reset passes its gradient through ``|S|`` too.

Two implementations of the same maths: ``reference`` (a per-step autograd graph) and ``fused`` (the time loop
in one autograd function with a hand-written backward that keeps only ``H``).
"""

from __future__ import annotations

from typing import Literal

import torch

from zoo.core.neuron import SpikingNeuron
from zoo.core.surrogate import Surrogate, make_surrogate

TernaryPath = Literal["fused", "reference"]
TERNARY_PATHS = ("fused", "reference")
NEG_THRESHOLD = 0.5
INHIBIT = 1e-3


class TernaryIF(SpikingNeuron):
    """Multi-step ternary integrate-and-fire neuron: input ``[T, ...]`` -> spikes in {-1, 0, +1} of the same shape.

    ``v_threshold`` is the positive threshold (the official ``haar_vth``); a spike of either sign resets the
    membrane to ``v_reset``. ``path`` picks the fused (default) or reference implementation.
    """

    signed = True

    def __init__(self, v_threshold: float = 1.0, neg_threshold: float = NEG_THRESHOLD, inhibit: float = INHIBIT,
                 v_reset: float = 0.0, detach_reset: bool = False, surrogate: str = "sigmoid",
                 alpha: float | None = None, path: TernaryPath = "fused") -> None:
        super().__init__()
        if path not in TERNARY_PATHS:
            raise ValueError(f"TernaryIF path must be one of {TERNARY_PATHS}, got {path!r}")
        self.v_threshold = float(v_threshold)
        self.neg_threshold = float(neg_threshold)
        self.inhibit = float(inhibit)
        self.v_reset = float(v_reset)
        self.detach_reset = bool(detach_reset)
        self.surrogate: Surrogate = make_surrogate(surrogate, alpha)
        self.path: TernaryPath = path

    def extra_repr(self) -> str:
        return (f"v_threshold={self.v_threshold}, neg_threshold=-({self.neg_threshold} + {self.inhibit}), "
                f"hard(v_reset={self.v_reset}), detach_reset={self.detach_reset}, "
                f"surrogate={self.surrogate.name}(alpha={self.surrogate.alpha})")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1:
            raise ValueError("TernaryIF expects a tensor with a time axis, got a scalar")
        params = (self.v_threshold, self.neg_threshold, self.inhibit, self.v_reset, self.detach_reset, self.surrogate)
        if self.path == "fused":
            return FusedTernaryIF.apply(x, *params)
        return ternary_reference(x, *params)

    def spike_counts(self, output: torch.Tensor) -> torch.Tensor:
        """A -1 spike is an event like a +1 (an accumulate of the negated weight): the count is ``|S|``."""
        return output.abs()


def _negative_argument(h: torch.Tensor, neg_threshold: float, inhibit: float) -> torch.Tensor:
    """``-(H + neg_threshold + inhibit)``, summed in the official order (the rounding decides spikes at the edge)."""
    return -(h + neg_threshold + inhibit)


def ternary_reference(x: torch.Tensor, v_threshold: float, neg_threshold: float, inhibit: float, v_reset: float,
                      detach_reset: bool, surrogate: Surrogate) -> torch.Tensor:
    """Step-by-step ternary IF through autograd; returns the spikes ``[T, ...]``."""
    v = torch.full_like(x[0], v_reset) if v_reset != 0.0 else torch.zeros_like(x[0])
    spikes = []
    for t in range(x.shape[0]):
        h = v + x[t]
        s = surrogate.spike(h - v_threshold) - surrogate.spike(_negative_argument(h, neg_threshold, inhibit))
        s_reset = s.detach() if detach_reset else s
        v = (1.0 - s_reset.abs()) * h + s_reset * v_reset
        spikes.append(s)
    return torch.stack(spikes)


class FusedTernaryIF(torch.autograd.Function):
    """The T loop of :class:`TernaryIF` as one autograd node; backward is computed from the saved ``H``.

    ``dS/dH = sg'(H - v_th) + sg'(-(H + c))``; ``dV/dH = 1 - |S|`` plus, with the reset attached,
    ``(v_reset - sign(S) H) dS/dH``; ``dH[t]/dX[t] = 1`` and ``dH[t+1]/dV[t] = 1`` (no leak).
    """

    @staticmethod
    def forward(ctx, x, v_threshold, neg_threshold, inhibit, v_reset, detach_reset, surrogate):
        h_seq = torch.empty_like(x)
        spikes = torch.empty_like(x)
        v = torch.full_like(x[0], v_reset)
        for t in range(x.shape[0]):
            h = torch.add(v, x[t], out=h_seq[t])
            s = spikes[t].copy_(h >= v_threshold)
            s.sub_((_negative_argument(h, neg_threshold, inhibit) >= 0).to(x.dtype))
            v = torch.where(s == 0, h, torch.full_like(h, v_reset))
        ctx.save_for_backward(h_seq, spikes)
        ctx.params = (v_threshold, neg_threshold, inhibit, v_reset, detach_reset, surrogate)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):
        h_seq, spikes = ctx.saved_tensors
        v_threshold, neg_threshold, inhibit, v_reset, detach_reset, surrogate = ctx.params
        ds_dh = surrogate.derivative(h_seq - v_threshold, inplace=True)
        ds_dh.add_(surrogate.derivative(_negative_argument(h_seq, neg_threshold, inhibit), inplace=True))
        dv_dh = 1.0 - spikes.abs()
        if not detach_reset:
            dv_dh.addcmul_(v_reset - spikes.sign() * h_seq, ds_dh)
        grad_h = ds_dh.mul_(grad_spikes)
        for t in range(h_seq.shape[0] - 2, -1, -1):
            grad_h[t].addcmul_(grad_h[t + 1], dv_dh[t])
        return grad_h, None, None, None, None, None, None
