"""The base class of every spiking neuron of the core: metrics (firing rates, op counts, NeuroBench) find neurons
by it, so a new neuron type is measured like the LIF as soon as it derives from it."""

from __future__ import annotations

import torch
from torch import nn


class SpikingNeuron(nn.Module):
    """A neuron layer whose output is spikes. ``spike_counts`` turns an output into spikes per neuron and step
    (the output itself for binary neurons; integer neurons override it)."""

    def spike_counts(self, output: torch.Tensor) -> torch.Tensor:
        return output


def neuron_modules(model: nn.Module) -> list[tuple[str, SpikingNeuron]]:
    """Every spiking neuron in ``model`` with its qualified name: the hook points of the firing-rate metrics."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SpikingNeuron)]
