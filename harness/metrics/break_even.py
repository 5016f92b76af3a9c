"""Break-even firing rate: the rate below which an SNN spends less compute energy than its equivalent quantised ANN.

Yan, Bai, Tang and Wong, "Reconsidering the Energy Efficiency of Spiking Neural Networks Inference from Analytical
Perspectives", arXiv 2409.08290. Their Theorem 1 maps a rate-coded SNN over T steps to a QNN of the same
architecture with ceil(log2(T+1))-bit activations. Per synapse the SNN spends T x s_r accumulations (E_AC each)
where the QNN spends (1 - gamma) multiply-accumulates (E_MAC each), gamma the QNN's activation sparsity; with the
neuron terms of order 1/N_src (fan-in) left out, their compute-only break-even condition is

    T x s_r < k (1 - gamma),   k = E_MAC / E_AC,   so   s_r* = k (1 - gamma) / T.

Compute only: the paper's full model adds data movement, which lowers the break-even (its example: about 5.7% at
T = 5 on typical neuromorphic hardware); the ``memory`` and ``lemaire`` conventions price that movement.

On a model (the Eq. 18 terms of the ``paper`` convention): a spike-driven layer l with F_l FLOPs per step run over
T_l steps breaks even at s_l* = k (1 - gamma) / T_l. For the whole model at one rate, the QNN twin costs
k (1 - gamma) sum F_l and the SNN s_r sum T_l F_l (in units of E_AC), so

    s_r* = k (1 - gamma) sum_l F_l / sum_l T_l F_l,

which is the paper's k (1 - gamma) / T when every layer runs T steps. The encoding layer (MACs on the image) is the
same in both networks and cancels. The measured rate it compares with is the FLOP-weighted
s_eff = sum_l fr_l T_l F_l / sum_l T_l F_l: the SNN wins at compute iff s_eff < s_r*.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.metrics.energy import E_AC_PJ, E_MAC_PJ, PaperRow

CITATION = ("Yan et al., arXiv 2409.08290, compute-only break-even T x s_r < k (1 - gamma), k = E_MAC / E_AC: "
            "s_r* = k (1 - gamma) sum F_l / sum T_l F_l")


@dataclass
class BreakEven:
    """The model's break-even firing rate and its measured FLOP-weighted rate, and the same per layer."""

    break_even_firing_rate: float | None
    measured_firing_rate: float | None
    k: float
    qnn_sparsity: float
    qnn_activation_bits: int
    per_layer: list[dict[str, Any]] = field(default_factory=list)
    formula: str = CITATION

    @property
    def snn_wins(self) -> bool | None:
        """Whether the measured rate is below the break-even (None without spike-driven layers)."""
        if self.break_even_firing_rate is None or self.measured_firing_rate is None:
            return None
        return self.measured_firing_rate < self.break_even_firing_rate


def qnn_activation_bits(T: int) -> int:
    """Activation bits of the QNN equivalent to a T-step rate-coded SNN (Yan et al., Theorem 1)."""
    return math.ceil(math.log2(T + 1))


def break_even(rows: Iterable[PaperRow], T: int, e_mac_pj: float = E_MAC_PJ, e_ac_pj: float = E_AC_PJ,
               qnn_sparsity: float = 0.0) -> BreakEven:
    """Break-even firing rates of the spike-driven ``paper`` rows (every row but the image-encoding ones) of a
    model with ``T`` steps against its QNN twin with activation sparsity ``qnn_sparsity`` (0: dense)."""
    if not 0.0 <= qnn_sparsity < 1.0:
        raise ValueError(f"qnn_sparsity must be in [0, 1), got {qnn_sparsity}")
    if e_ac_pj <= 0 or e_mac_pj <= 0:
        raise ValueError(f"E_MAC and E_AC must be > 0, got {e_mac_pj} and {e_ac_pj}")
    k = e_mac_pj / e_ac_pj
    spiking = [r for r in rows if r.input != "image" and r.flops > 0]
    per_layer = [{"layer": r.layer, "T": r.T, "fr": r.fr, "break_even_firing_rate": k * (1 - qnn_sparsity) / r.T}
                 for r in spiking]
    flops = sum(r.flops for r in spiking)
    step_flops = sum(r.T * r.flops for r in spiking)
    if step_flops == 0:
        return BreakEven(None, None, k, qnn_sparsity, qnn_activation_bits(T), per_layer)
    measured = sum(r.fr * r.T * r.flops for r in spiking) / step_flops
    return BreakEven(k * (1 - qnn_sparsity) * flops / step_flops, measured, k, qnn_sparsity, qnn_activation_bits(T),
                     per_layer)


def format_break_even(result: BreakEven) -> str:
    """The break-even column per spike-driven layer, then the model's break-even against its measured rate."""
    head = f"{'layer':<44} {'T':>3} {'fr':>8} {'break-even fr':>14}"
    lines = [f"break-even against the {result.qnn_activation_bits}-bit QNN twin (compute only, gamma "
             f"{result.qnn_sparsity}, k = E_MAC/E_AC = {result.k:.4g})", head, "-" * len(head)]
    lines += [f"{r['layer']:<44} {r['T']:>3} {r['fr']:>8.4f} {r['break_even_firing_rate']:>14.4f}"
              for r in result.per_layer]
    if result.break_even_firing_rate is None:
        lines.append("no spike-driven layer: no break-even firing rate")
    else:
        verdict = "below: the SNN wins" if result.snn_wins else "not below: the QNN twin wins"
        lines.append(f"break-even firing rate {result.break_even_firing_rate:.4f}; measured FLOP-weighted rate "
                     f"{result.measured_firing_rate:.4f} ({verdict} at compute)")
    lines.append(f"formula: {result.formula}")
    return "\n".join(lines)
