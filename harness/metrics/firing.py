"""Firing rates of every neuron layer: spikes / (neurons x T), from forward hooks on the shared core's neurons
(``zoo.core.SpikingNeuron``: LIF, PLIF, MultiSpike, TernaryIF, ...). An integer neuron's spikes are its counts (0..D), so
its rate is the mean count per neuron and step and can exceed 1; a ternary neuron's -1 spikes count as events (|S|)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.core import neuron_modules


class FiringRates:
    """Accumulate spike counts of every LIF while active: ``with FiringRates(model) as fr: model(x)``.

    A LIF that was never called has no rate: :meth:`rate` raises naming it, and :meth:`table` lists it
    under ``never_called`` rather than reporting 0.
    """

    def __init__(self, model: nn.Module) -> None:
        self.lifs = neuron_modules(model)
        self.T = getattr(model, "T", None)
        if not self.lifs:
            raise ValueError(f"{type(model).__name__} has no zoo.core spiking neuron: firing rates are undefined")
        self.spikes: dict[str, float] = {name: 0.0 for name, _ in self.lifs}
        self.elements: dict[str, int] = {name: 0 for name, _ in self.lifs}
        self.step_spikes: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> "FiringRates":
        for name, lif in self.lifs:
            self._handles.append(lif.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def hook(module: nn.Module, args: Any, spikes: torch.Tensor) -> None:
            counts = module.spike_counts(spikes.detach())
            self.spikes[name] += float(counts.sum(dtype=torch.float64))
            self.elements[name] += spikes.numel()
            if self.T and counts.dim() and counts.shape[0] % self.T == 0:  # time-major: [T, ...] or [T*B, ...]
                per_step = counts.reshape(self.T, -1).sum(1, dtype=torch.float64).cpu()
                self.step_spikes[name] = self.step_spikes.get(name, 0) + per_step
        return hook

    def rate(self, name: str) -> float:
        """Spikes per neuron per time step of one LIF layer."""
        if name not in self.elements:
            raise KeyError(f"no LIF named {name!r}")
        if self.elements[name] == 0:
            raise ValueError(f"LIF {name!r} was never called: its firing rate cannot be computed")
        return self.spikes[name] / self.elements[name]

    def overall(self) -> float:
        """All spikes over all neuron-steps of every LIF that ran."""
        total = sum(self.elements.values())
        if total == 0:
            raise ValueError("no LIF layer was called: the overall firing rate cannot be computed")
        return sum(self.spikes.values()) / total

    def rates_per_step(self, name: str) -> list[float]:
        """Spikes per neuron at each time step of one LIF layer (its output's leading axis is time-major)."""
        per_step_elements = self.elements[name] / self.T
        return [float(s) / per_step_elements for s in self.step_spikes[name]]

    def table(self) -> dict[str, Any]:
        """Per-layer rates (called LIFs) overall and per time step (layers whose output has a time-major
        leading axis), the overall rate, and the names of LIFs never called."""
        called = [name for name, _ in self.lifs if self.elements[name]]
        return {
            "per_layer": {name: self.rate(name) for name in called},
            "per_layer_step": {name: self.rates_per_step(name) for name in called if name in self.step_spikes},
            "overall": self.overall(),
            "never_called": [name for name, _ in self.lifs if not self.elements[name]],
        }
