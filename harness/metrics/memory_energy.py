"""Memory-aware energy conventions computed by spikingjelly 2.0's own estimators (``op_counter``).

Both run on the spikingjelly-neuron copy of the model (``with_reference_neurons``: same weights, every zoo LIF a
spikingjelly ``LIFNode``, every PLIF a ``ParametricLIFNode``, plain Conv/Linear layers), once per evaluation batch,
and report the estimator's own figures averaged per image, with its ``EnergyModelInfo`` model id:

``memory``: ``estimate_simple_energy`` (model id ``simple_horowitz_step_composite_v1``): Horowitz 2014 45 nm
    E_MAC 4.6 pJ and E_AC 0.9 pJ on the MACs and ACs the dispatcher sees, plus 24.96 pJ/byte (3.12 pJ/bit, the
    figure STEP uses) on the weight and bias reads of Conv/Linear layers and one read and one write of every
    neuron state per time step, in bytes of the runtime dtype (fp32 here).
``lemaire``: ``estimate_lemaire_energy`` (model id ``lemaire_2022_runtime_v1``; Lemaire et al. 2022,
    arXiv 2210.13107): 32-bit integer add 0.1 pJ and multiply 3.1 pJ, addressing, and SRAM reads and writes whose
    cost per byte is interpolated from the size of the buffer they hit. Its scope is Conv/Linear modules and
    ``IFNode``/``LIFNode`` neurons: it is run non-strict and the module types it leaves out (BatchNorm, ...) are
    reported; matmuls outside a Linear module (attention) are outside its scope. Its buffer sizes grow with the
    batch, so its per-image figure is for the batch size given (one image per batch is one inference).

Neurons without a spikingjelly counterpart (the integer MultiSpike, the ternary TernaryIF) are refused: the
estimators would take their multi-valued outputs for real values and count them wrongly.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from harness.metrics.energy import PJ_PER_MJ
from harness.metrics.perf import with_reference_neurons

MEMORY_CONVENTIONS = ("memory", "lemaire")
BITS_PER_BYTE = 8


class UnsupportedModelError(ValueError):
    """The model has a neuron the chosen spikingjelly estimator cannot count."""


@dataclass
class SpikingJellyEnergy:
    """One spikingjelly estimator's figures per image: total, components, counts, and per layer where it has them."""

    convention: str
    model_id: str
    model_info: dict[str, Any]
    parameters: dict[str, Any]
    images: int
    energy_pj: float
    breakdown_pj: dict[str, float]
    counts: dict[str, float]
    per_layer: list[dict[str, Any]] = field(default_factory=list)
    buffer_sizes_bytes: dict[str, int] = field(default_factory=dict)
    omitted: list[str] = field(default_factory=list)

    @property
    def energy_mj(self) -> float:
        return self.energy_pj / PJ_PER_MJ

    def summary(self) -> dict[str, Any]:
        """The JSON block of the CLI: energy per image, the estimator's model id and parameters, its audit."""
        return {"energy_mj": self.energy_mj, **asdict(self)}


def check_supported(model: nn.Module, convention: str) -> None:
    """Raise ``UnsupportedModelError`` (one line) when a neuron of ``model`` has no counterpart the estimator of
    ``convention`` counts: only zoo LIF/PLIF map to spikingjelly neurons, and Lemaire's formulas know LIFNode/IFNode
    but not ParametricLIFNode."""
    from zoo.core import LIF, neuron_modules

    if convention not in MEMORY_CONVENTIONS:
        raise ValueError(f"unknown spikingjelly energy convention {convention!r}; expected one of {MEMORY_CONVENTIONS}")
    for name, neuron in neuron_modules(model):
        if not isinstance(neuron, LIF):
            raise UnsupportedModelError(
                f"{type(neuron).__name__} neurons ({name}) have no spikingjelly counterpart: the {convention} "
                f"convention cannot count them (use --convention paper or ops)")
        if convention == "lemaire" and neuron.decay() is not None:
            raise UnsupportedModelError(
                f"spikingjelly's Lemaire estimator has formulas for IFNode/LIFNode only, not the ParametricLIFNode "
                f"that the PLIF {name} becomes (use --convention memory, paper or ops)")


def _scope_totals(counter_counts: dict[str, dict[Any, int]]) -> dict[str, int]:
    return {scope: sum(values.values()) for scope, values in counter_counts.items() if scope != "Global"}


def _exclusive(totals: dict[str, int]) -> dict[str, int]:
    """Counts each module scope recorded itself: its total less that of the scopes nested right inside it (every
    op is recorded in every enclosing scope that ran, so the exclusive counts add up to the model's). A container
    that never runs (a ModuleList) has no scope: its members nest in the nearest enclosing scope that has one."""
    own = dict(totals)
    for scope, total in totals.items():
        parent = scope.rpartition(".")[0]
        while parent and parent not in own:
            parent = parent.rpartition(".")[0]
        if parent:
            own[parent] -= total
    return own


def _layer_rows(profiler: Any, root: str) -> dict[str, dict[str, float]]:
    """Per module (its name in the model, ``(top level)`` for the model itself): the MACs, ACs and memory bytes the
    simple estimator's counters recorded in that module itself, and their energy at the estimator's prices."""
    cost = profiler.config.cost_config
    parts = {"mac": _exclusive(_scope_totals(profiler.mac_counter.get_counts())),
             "ac": _exclusive(_scope_totals(profiler.ac_counter.get_counts())),
             "memory_bytes": _exclusive(_scope_totals(profiler.memory_counter.get_counts()))}
    rows: dict[str, dict[str, float]] = {}
    for scope in sorted(set().union(*parts.values())):
        counts = {part: float(values.get(scope, 0)) for part, values in parts.items()}
        if not any(counts.values()):
            continue
        energy = (cost.e_mac_pj * counts["mac"] + cost.e_ac_pj * counts["ac"]
                  + cost.e_memory_pj_per_byte * counts["memory_bytes"])
        layer = "(top level)" if scope == root else scope.removeprefix(root + ".")
        rows[layer] = {**counts, "energy_pj": energy}
    return rows


def _summed(parts: Iterable[dict[str, float]], images: int) -> dict[str, float]:
    """Key-wise sum of ``parts`` divided by ``images``: per-batch figures as figures per image."""
    total: dict[str, float] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0.0) + value
    return {key: value / images for key, value in total.items()}


def _over_batches(run_batch: Callable[[torch.Tensor], tuple[Any, dict[str, dict[str, float]]]],
                  batches: Iterable[torch.Tensor]) -> tuple[int, list[Any], list[dict[str, float]]]:
    """Run an estimator once per batch: the image count, its reports, and its per-layer rows per image."""
    images, reports, layers = 0, [], defaultdict(list)
    for x in batches:
        report, rows = run_batch(x)
        images += x.shape[0]
        reports.append(report)
        for layer, row in rows.items():
            layers[layer].append(row)
    if not reports:
        raise ValueError("energy needs at least one evaluation batch; got none")
    return images, reports, [{"layer": layer, **_summed(rows, images)} for layer, rows in layers.items()]


def _result(convention: str, reports: list[Any], totals_pj: list[float], images: int, parameters: dict[str, Any],
            **extra: Any) -> SpikingJellyEnergy:
    info = reports[-1].model_info
    return SpikingJellyEnergy(
        convention=convention, model_id=info.model_id, model_info=asdict(info), parameters=parameters,
        images=images, energy_pj=sum(totals_pj) / images, breakdown_pj=_summed((r.breakdown_pj for r in reports),
                                                                               images),
        counts=_summed((r.counts for r in reports), images), **extra)


def simple_energy(reference: nn.Module, batches: Iterable[torch.Tensor]) -> SpikingJellyEnergy:
    """spikingjelly's ``estimate_simple_energy`` on each batch (its profiler around one no-grad forward, as that
    function does, kept to read the per-module counts), per image, with the per-module breakdown."""
    from spikingjelly.activation_based.op_counter import SimpleEnergyProfiler

    def run_batch(x: torch.Tensor) -> tuple[Any, dict[str, dict[str, float]]]:
        profiler = SimpleEnergyProfiler()
        profiler.bind_model(reference)
        with profiler, torch.no_grad():
            reference(x)
        return profiler.get_report(), _layer_rows(profiler, type(reference).__name__)

    images, reports, layers = _over_batches(run_batch, batches)
    cost = reports[-1].config.cost_config
    parameters = {"e_mac_pj": cost.e_mac_pj, "e_ac_pj": cost.e_ac_pj, "e_memory_pj_per_byte": cost.e_memory_pj_per_byte,
                  "e_memory_pj_per_bit": cost.e_memory_pj_per_byte / BITS_PER_BYTE,
                  "dtype": str(next(reference.parameters()).dtype)}
    omitted = sorted({message for report in reports for message in report.warnings})
    return _result("memory", reports, [r.energy_total_pj for r in reports], images, parameters, per_layer=layers,
                   omitted=omitted)


def lemaire_energy(reference: nn.Module, batches: Iterable[torch.Tensor]) -> SpikingJellyEnergy:
    """spikingjelly's ``estimate_lemaire_energy`` (non-strict: unsupported module types are left out and listed) on
    each batch, per image; the buffer sizes are the largest any batch needed."""
    from spikingjelly.activation_based.op_counter import LemaireEnergyConfig, analytical_energy, estimate_lemaire_energy

    config = LemaireEnergyConfig(strict=False)

    def run_batch(x: torch.Tensor) -> tuple[Any, dict[str, dict[str, float]]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the same messages are in report.warnings
            return estimate_lemaire_energy(reference, x, config=config), {}

    images, reports, _ = _over_batches(run_batch, batches)
    cost = config.cost_config
    parameters = {"e_add_pj": cost.e_add_pj, "e_mul_pj": cost.e_mul_pj,
                  "memory_breakpoints_bytes_pj_per_byte": [list(p) for p in cost.memory_breakpoints],
                  "word_bits": int(analytical_energy._LEMAIRE_ACCESS_WIDTH_BYTES * BITS_PER_BYTE),
                  "snn_fifo_capacity_elements": config.snn_fifo_capacity_elements}
    buffers = {key: max(r.buffer_sizes_bytes[key] for r in reports) for key in reports[-1].buffer_sizes_bytes}
    omitted = sorted({message for report in reports for message in report.warnings})
    return _result("lemaire", reports, [r.total_pj for r in reports], images, parameters,
                   buffer_sizes_bytes=buffers, omitted=omitted)


ESTIMATORS = {"memory": simple_energy, "lemaire": lemaire_energy}


def measure_memory_energy(model: nn.Module, batches: Iterable[torch.Tensor], convention: str) -> SpikingJellyEnergy:
    """Energy per image of ``model`` in a spikingjelly convention, computed by spikingjelly on the spikingjelly-neuron
    copy of the model (same weights) over ``batches``; refuses a model the estimator cannot count."""
    check_supported(model, convention)
    reference = with_reference_neurons(model.eval()).eval()
    return ESTIMATORS[convention](reference, batches)


def format_memory_audit(result: SpikingJellyEnergy, title: str = "") -> str:
    """The audit of a spikingjelly convention as text: per-layer rows (``memory``) or components, then the total."""
    lines = [title] if title else []
    if result.per_layer:
        head = f"{'layer':<44} {'MACs':>12} {'ACs':>12} {'mem bytes':>12} {'pJ':>12}"
        lines += [head, "-" * len(head)]
        lines += [f"{r['layer']:<44} {r['mac']:>12.6g} {r['ac']:>12.6g} {r['memory_bytes']:>12.6g} "
                  f"{r['energy_pj']:>12.6g}" for r in result.per_layer]
        lines.append("")
    lines += [f"{'component':<44} {'pJ':>12}"]
    lines += [f"{name:<44} {value:>12.6g}" for name, value in result.breakdown_pj.items()]
    lines += [f"{'count: ' + name:<44} {value:>12.6g}" for name, value in result.counts.items()]
    lines += [f"{'buffer: ' + name:<44} {value:>12,}" for name, value in result.buffer_sizes_bytes.items()]
    lines += [f"left out by the estimator: {message}" for message in result.omitted]
    params = ", ".join(f"{k} {v}" for k, v in result.parameters.items())
    lines += ["", f"estimator: spikingjelly {result.model_id} ({result.model_info['scope']}); {params}",
              f"{result.convention} (spikingjelly {result.model_id}): {result.energy_pj:.6g} pJ = "
              f"{result.energy_mj:.4f} mJ per image over {result.images} images"]
    return "\n".join(lines)

