"""Measurements that fill the papers' tables: accuracy, parameters, firing rates, op counts, energy, speed."""

from harness.metrics.accuracy import count_params, topk_correct
from harness.metrics.energy import (CONVENTIONS, E_AC_PJ, E_MAC_PJ, AuditRow, EnergyReport, PaperRow, format_audit,
                                    measure_energy)
from harness.metrics.firing import FiringRates
from harness.metrics.counter import LayerCounter
from harness.metrics.ops import OpCounter, OpTally, PaperTally, count_ops
from harness.metrics.spikes import multiplicity
from harness.metrics.perf import latency_ms, peak_memory_mb, reset_peak_memory, throughput

__all__ = [
    "topk_correct", "count_params", "FiringRates", "LayerCounter", "OpCounter", "OpTally", "PaperTally", "count_ops",
    "multiplicity",
    "CONVENTIONS", "E_AC_PJ", "E_MAC_PJ", "AuditRow", "PaperRow", "EnergyReport", "measure_energy", "format_audit",
    "throughput", "latency_ms", "peak_memory_mb", "reset_peak_memory",
]
