"""Firing rates of every neuron layer: spikes / (neurons x T), from forward hooks on the shared core's neurons
(``zoo.core.SpikingNeuron``: LIF, PLIF, MultiSpike, TernaryIF, ...). An integer neuron's spikes are its counts
(0..D), so its rate is the mean count per neuron and step and can exceed 1; a ternary neuron's -1 spikes count as
events (|S|).

Counts accumulate on the device (per layer and time step) and are read once, when a rate is asked for; each output's
event total goes to the pass's shared :class:`~harness.metrics.spikes.TensorStats` (the op counter and NeuroBench
read it there instead of summing the spikes again). A neuron's
output runs over time along its ``time_axis()``: the axis holds ``T`` steps (``[T, B, ...]``) or the flattened
``T x B`` (``[T*B, ...]``, time-major as ``SeqFlat`` flattens it); an output with neither has no per-step rates.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.metrics.spikes import TensorStats, whole_sum
from zoo.core import neuron_modules


class FiringRates:
    """Accumulate spike counts of every neuron while active: ``with FiringRates(model, T) as fr: model(x)``.

    A neuron that was never called has no rate: :meth:`rate` raises naming it, and :meth:`table` lists it
    under ``never_called`` rather than reporting 0. ``T`` (default ``model.T``, else 1) splits rates per step.
    ``stats``: the pass's shared statistics, where each output's event total is left for other metrics.
    """

    def __init__(self, model: nn.Module, T: int | None = None, stats: TensorStats | None = None) -> None:
        self.model = model
        self.lifs = neuron_modules(model)
        if not self.lifs:
            raise ValueError(f"{type(model).__name__} has no zoo.core spiking neuron: firing rates are undefined")
        self.T = int(T or getattr(model, "T", 1) or 1)
        self.elements: dict[str, int] = {name: 0 for name, _ in self.lifs}
        self._per_step: dict[str, torch.Tensor] = {}
        self._no_time_axis: set[str] = set()
        self._handles: list[Any] = []
        self._batch = 1
        self.stats = stats if stats is not None else TensorStats()

    def __enter__(self) -> "FiringRates":
        self._handles.append(self.model.register_forward_pre_hook(self._start_forward))
        for name, lif in self.lifs:
            self._handles.append(lif.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _start_forward(self, module: nn.Module, args: Any) -> None:
        if args and isinstance(args[0], torch.Tensor) and args[0].dim():
            self._batch = args[0].shape[0]

    def _hook(self, name: str):
        def hook(module: nn.Module, args: Any, spikes: torch.Tensor) -> None:
            with torch.no_grad():
                counts = module.spike_counts(spikes.detach()).movedim(module.time_axis(), 0)
                steps = self._steps(counts)
                if steps is None:
                    self._no_time_axis.add(name)
                    total = whole_sum(counts, module.max_count)[0]
                    per_step = total.expand(self.T) / self.T
                else:
                    per_lead = whole_sum(counts, module.max_count, lead=steps)
                    per_step = per_lead.reshape(self.T, -1).sum(1)
                    total = per_lead.sum()
                # the neuron contract: spike_counts(output) is |output| / spike_unit
                self.stats.put_events(spikes, float(module.spike_unit), total)
                self._per_step[name] = self._per_step[name] + per_step if name in self._per_step else per_step
                self.elements[name] += spikes.numel()
        return hook

    def _steps(self, counts: torch.Tensor) -> int | None:
        """How many leading blocks of ``counts`` to split into time steps (T or T x B), or None (no time axis)."""
        lead = counts.shape[0] if counts.dim() else 0
        return lead if lead in (self.T, self.T * self._batch) or (self.T == 1 and lead) else None

    def _spikes(self) -> dict[str, list[float]]:
        """Spikes per called layer and time step, read from the device in one transfer."""
        names = list(self._per_step)
        if not names:
            return {}
        return dict(zip(names, torch.stack([self._per_step[n] for n in names]).cpu().tolist()))

    def rate(self, name: str) -> float:
        """Spikes per neuron per time step of one neuron layer."""
        if name not in self.elements:
            raise KeyError(f"no LIF named {name!r}")
        if self.elements[name] == 0:
            raise ValueError(f"LIF {name!r} was never called: its firing rate cannot be computed")
        return sum(self._spikes()[name]) / self.elements[name]

    def overall(self) -> float:
        """All spikes over all neuron-steps of every neuron layer that ran."""
        total = sum(self.elements.values())
        if total == 0:
            raise ValueError("no LIF layer was called: the overall firing rate cannot be computed")
        return sum(sum(steps) for steps in self._spikes().values()) / total

    def table(self) -> dict[str, Any]:
        """Per-layer rates (called neurons), per layer and time step, the overall rate, and the names of neurons
        never called. A layer whose output has no time axis (``no_time_axis``) has no per-step rates."""
        spikes = self._spikes()
        called = [name for name, _ in self.lifs if self.elements[name]]
        total = sum(self.elements.values())
        if total == 0:
            raise ValueError("no LIF layer was called: the overall firing rate cannot be computed")
        return {
            "per_layer": {name: sum(spikes[name]) / self.elements[name] for name in called},
            "per_layer_step": {name: [s * self.T / self.elements[name] for s in spikes[name]]
                               for name in called if name not in self._no_time_axis},
            "overall": sum(sum(spikes[name]) for name in called) / total,
            "never_called": [name for name, _ in self.lifs if not self.elements[name]],
        }
