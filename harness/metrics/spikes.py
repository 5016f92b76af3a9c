"""Which tensors hold spikes, and how many synaptic events each value is: the semantics both op counters share.

A value ``v`` of a spike tensor is ``|v| / unit`` events (its multiplicity). The unit is the spike value of the
neuron that produced the tensor (``SpikingNeuron.spike_unit``): 1 for LIF, PLIF and TernaryIF (a -1 spike is
one event), ``1 / norm`` for MultiSpike, whose output ``k / D`` is ``k`` spikes (E-SpikeFormer's spike-driven
inference emits an integer activation ``k`` as ``k`` binary spikes over ``D`` virtual time steps, so each is a
synaptic event). A tensor is traced to its neuron through its storage (views keep it); a tensor no neuron
produced (event frames, sums of spikes, products of spike matrices) is spikes when it is integer-valued (unit
1), else when it is a whole multiple of a fractional unit of the model's neurons, else real-valued.

The ``paper`` convention's firing rate of a spike operand follows a named rule: ``"count"`` (events per
element: a MultiSpike count k is k events, as E-SpikeFormer counts it) for the output of a neuron that emits
counts (``max_count > 1``) or a tensor of fractional unit; ``"nonzero"`` (the fraction of non-zero elements, the
definition of the Spike-driven Transformer, NeurIPS 2023, supplementary "Energy Consumption Analysis Details")
for everything else, event frames included. For binary spikes both rules give the same number.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from zoo.core import SpikingNeuron, neuron_modules

FrRule = Literal["nonzero", "count"]
Candidate = tuple[float, FrRule]
WHOLE: tuple[Candidate, ...] = ((1.0, "nonzero"),)


def multiplicity(x: torch.Tensor, unit: float = 1.0) -> torch.Tensor | None:
    """``|x| / unit`` as float32 if every value of ``x`` is a whole number of ``unit``, ``None`` if not (real)."""
    if x.is_complex():
        raise TypeError(f"complex tensor of shape {list(x.shape)} cannot be classed as spikes or real values")
    if not x.is_floating_point():
        return x.float().abs() / unit if unit != 1.0 else x.float().abs()
    scaled = x.detach().abs().float()
    if unit != 1.0:
        scaled = scaled / unit
    return scaled if bool(_whole(scaled).all()) else None


def _whole(scaled: torch.Tensor) -> torch.Tensor:
    """Which values are whole numbers (inf and nan are not: ``inf - inf`` is nan)."""
    return torch.eq(scaled - torch.round(scaled), 0)


class SpikeSources:
    """The spike candidates of a tensor: the neuron that produced it (traced by storage), else the model's units.

    ``record`` is a neuron forward hook; entries die with their storage, so a freed and reused buffer is never
    mistaken for a neuron's output.
    """

    def __init__(self, model: nn.Module) -> None:
        units = {float(n.spike_unit) for _, n in neuron_modules(model)}
        fractional = sorted((u for u in units if u != 1.0), reverse=True)
        self.default: tuple[Candidate, ...] = ((1.0, "nonzero"), *((u, "count") for u in fractional))
        self._outputs: dict[int, tuple[weakref.ref, Candidate]] = {}
        self._parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def record(self, neuron: nn.Module, args: object, output: object) -> None:
        if isinstance(output, torch.Tensor) and isinstance(neuron, SpikingNeuron):
            storage = output.untyped_storage()
            rule: FrRule = "count" if neuron.max_count > 1 else "nonzero"
            self._outputs[storage.data_ptr()] = (weakref.ref(storage), (float(neuron.spike_unit), rule))

    def candidates(self, x: torch.Tensor) -> tuple[Candidate, ...]:
        """The (unit, rule) pairs to try on ``x``, in order: its neuron's; a weight's (whole numbers only: the
        fractional units are the neurons'); else the defaults."""
        storage = x.untyped_storage()
        entry = self._outputs.get(storage.data_ptr())
        if entry is not None and entry[0]() is storage:
            return (entry[1],)
        if storage.data_ptr() in self._parameters:
            return WHOLE
        return self.default

    def first_match(self, x: torch.Tensor) -> tuple[torch.Tensor | None, FrRule]:
        """``x``'s events per value and its rule, decided on the host (a sync), or ``(None, "nonzero")`` if real."""
        for unit, rule in self.candidates(x):
            mult = multiplicity(x, unit)
            if mult is not None:
                return mult, rule
        return None, "nonzero"

    def clear(self) -> None:
        self._outputs.clear()


@dataclass
class Operand:
    """One operand classified on its device: ``spike`` (0-d bool), ``mult`` (|x| / unit, meaningful where
    ``spike``), ``fr`` (its paper firing rate by its rule, meaningful where ``spike``), ``count_rule`` (0-d bool:
    the rule is ``count``) and ``nonzero`` (its fraction of non-zero elements)."""

    spike: torch.Tensor
    mult: torch.Tensor
    fr: torch.Tensor
    count_rule: torch.Tensor
    nonzero: torch.Tensor


def classify(x: torch.Tensor, candidates: tuple[Candidate, ...]) -> Operand:
    """Classify ``x`` without leaving the device: the first candidate whose unit divides every value wins."""
    if x.is_complex():
        raise TypeError(f"complex tensor of shape {list(x.shape)} cannot be classed as spikes or real values")
    magnitude = x.detach().abs().float()
    numel = max(x.numel(), 1)
    nonzero = torch.count_nonzero(magnitude).double() / numel
    false = torch.zeros((), dtype=torch.bool, device=x.device)
    spike, mult, fr, count_rule = false, magnitude, nonzero, false
    for unit, rule in reversed(candidates):
        scaled = magnitude / unit if unit != 1.0 else magnitude
        fits = torch.ones((), dtype=torch.bool, device=x.device) if not x.is_floating_point() \
            else _whole(scaled).all()
        rate = scaled.sum(dtype=torch.float64) / numel if rule == "count" else nonzero
        mult = scaled if mult is magnitude and unit == 1.0 else torch.where(fits, scaled, mult)
        fr = torch.where(fits, rate, fr)
        count_rule = torch.where(fits, torch.tensor(rule == "count", device=x.device), count_rule)
        spike = spike | fits
    return Operand(spike, mult, fr, count_rule, nonzero)
