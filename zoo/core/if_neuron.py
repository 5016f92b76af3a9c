"""The multi-step integrate-and-fire neuron: spikingjelly's ``IFNode``, a LIF without leak.

spikingjelly 2.0's ``IFNode`` charges ``H = V + X`` (no ``tau``, no ``decay_input``), then fires and resets as its
``LIFNode`` does. That is the LIF's charge without decay, ``H = V - (V - v_reset) / tau + X`` at ``tau = inf``
(``(V - v_reset) / inf`` is an exact zero, so the sum rounds as ``V + X``), so ``IF`` runs the LIF's reference and
fused paths with an infinite ``tau`` (proven equal to ``IFNode`` in tests/zoo/core/test_if_neuron.py).
"""

from __future__ import annotations

import math

import torch

from zoo.core.lif import LIF, Path


class IF(LIF):
    """Multi-step integrate-and-fire neuron: ``H = V + X``, fire at ``v_threshold``, hard or soft reset.

    Takes the LIF's arguments except ``tau`` and ``decay_input`` (an IF has no leak). Like the PLIF it runs the fused
    path where the LIF would take its Triton kernels, which are written and tested for a finite ``tau``.
    """

    def __init__(self, v_threshold: float = 1.0, v_reset: float | None = 0.0, detach_reset: bool = True,
                 surrogate: str = "sigmoid", alpha: float | None = None, time_dim: int = 0, path: Path = "auto",
                 store_v_seq: bool = False) -> None:
        super().__init__(tau=math.inf, v_threshold=v_threshold, v_reset=v_reset, decay_input=False,
                         detach_reset=detach_reset, surrogate=surrogate, alpha=alpha, time_dim=time_dim, path=path,
                         store_v_seq=store_v_seq)

    def resolved_path(self, device: torch.device | None = None) -> str:
        """As the LIF's, but the fused path where the LIF would take the Triton kernels."""
        path = super().resolved_path(device)
        if path == "triton":
            if self.path == "triton":
                raise ValueError("IF has no Triton path: use path 'auto' or 'fused'")
            return "fused"
        return path

    def extra_repr(self) -> str:
        return super().extra_repr().replace(f"tau={self.tau}, ", "").replace(f", decay_input={self.decay_input}", "")
