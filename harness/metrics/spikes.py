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
from functools import cached_property
from typing import Literal, NamedTuple

import torch
from torch import nn

from zoo.core import SpikingNeuron, neuron_modules

FrRule = Literal["nonzero", "count"]


class Candidate(NamedTuple):
    """A way to read a tensor as spikes: one event per ``unit``, rated by ``rule``; ``neuron``: known to be a
    neuron's output (no check needed), ``signed``: may hold negative spikes."""

    unit: float
    rule: FrRule
    neuron: bool = False
    signed: bool = True


WHOLE: tuple[Candidate, ...] = (Candidate(1.0, "nonzero"),)


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
        self.default: tuple[Candidate, ...] = (*WHOLE, *(Candidate(u, "count") for u in fractional))
        self._outputs: dict[int, tuple[weakref.ref, Candidate]] = {}
        self._parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def record(self, neuron: nn.Module, args: object, output: object) -> None:
        if isinstance(output, torch.Tensor) and isinstance(neuron, SpikingNeuron):
            storage = output.untyped_storage()
            rule: FrRule = "count" if neuron.max_count > 1 else "nonzero"
            candidate = Candidate(float(neuron.spike_unit), rule, True, bool(neuron.signed))
            self._outputs[storage.data_ptr()] = (weakref.ref(storage), candidate)

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
        for unit, rule, _, _ in self.candidates(x):
            mult = multiplicity(x, unit)
            if mult is not None:
                return mult, rule
        return None, "nonzero"

    def clear(self) -> None:
        self._outputs.clear()


class Operand:
    """One operand classified on its device: ``spike`` (0-d bool), and, computed only when asked for, ``mult``
    (|x| / unit, meaningful where ``spike``), ``fr`` (its paper firing rate by its rule, meaningful where
    ``spike``) and ``nonzero`` (its fraction of non-zero elements). ``count_rule`` (0-d bool): the rule is
    ``count``. A neuron's own output (``from_neuron``) is spikes without a check, and a binary neuron's rate is
    its mean magnitude (equal to its non-zero fraction)."""

    def __init__(self, x: torch.Tensor, spike: torch.Tensor, unit: float | torch.Tensor, count_rule: torch.Tensor,
                 rules: frozenset[str], from_neuron: bool = False, signed: bool = True,
                 mult: torch.Tensor | None = None) -> None:
        self.x, self.spike, self.unit, self.count_rule = x, spike, unit, count_rule
        self.rules, self.from_neuron, self.signed = rules, from_neuron, signed
        self._numel = max(x.numel(), 1)
        if mult is not None:
            self.mult = mult

    @cached_property
    def mult(self) -> torch.Tensor:
        magnitude = self.x.detach()
        magnitude = (magnitude.abs() if self.signed else magnitude).float()
        return magnitude if isinstance(self.unit, float) and self.unit == 1.0 else magnitude / self.unit

    @cached_property
    def nonzero(self) -> torch.Tensor:
        return torch.count_nonzero(self.x).double() / self._numel

    @cached_property
    def fr(self) -> torch.Tensor:
        if self.rules == {"nonzero"} and not self.from_neuron:
            return self.nonzero
        rate = self.mult.sum(dtype=torch.float64) / self._numel
        return rate if self.from_neuron or self.rules == {"count"} else torch.where(self.count_rule, rate, self.nonzero)


def classify(x: torch.Tensor, candidates: tuple[Candidate, ...]) -> Operand:
    """Classify ``x`` without leaving the device: a neuron's output is spikes of its unit; otherwise the first
    candidate whose unit divides every value wins (none: real)."""
    if x.is_complex():
        raise TypeError(f"complex tensor of shape {list(x.shape)} cannot be classed as spikes or real values")
    rules = frozenset(c.rule for c in candidates)
    if len(candidates) == 1 and candidates[0].neuron:
        unit, rule, _, signed = candidates[0]
        true = torch.ones((), dtype=torch.bool, device=x.device)
        return Operand(x, true, unit, true if rule == "count" else ~true, rules, True, signed)
    spike = torch.zeros((), dtype=torch.bool, device=x.device)
    unit_now: float | torch.Tensor | None = None
    count_rule = spike
    for unit, rule, _, _ in reversed(candidates):
        if x.is_floating_point():
            fits = torch.eq(torch.frac(x if unit == 1.0 else x / unit), 0).all()  # frac(inf) is nan: not whole
        else:
            fits = torch.ones((), dtype=torch.bool, device=x.device)
        unit_now = unit if unit_now is None else torch.where(fits, unit, unit_now)
        count_rule = torch.where(fits, rule == "count", count_rule)
        spike = spike | fits
    return Operand(x, spike, unit_now if unit_now is not None else 1.0, count_rule, rules)
