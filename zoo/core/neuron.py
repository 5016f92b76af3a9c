"""The base class of every spiking neuron of the core: metrics (firing rates, op counts, NeuroBench) find neurons
by it, so a new neuron type is measured like the LIF as soon as it derives from it."""

from __future__ import annotations

import torch
from torch import nn


class SpikingNeuron(nn.Module):
    """A neuron layer whose output is spikes. ``spike_counts`` turns an output into spikes per neuron and step
    (the output itself for binary neurons; integer neurons override it).

    ``spike_unit`` is the output value of one spike event (an output ``k * spike_unit`` is ``k`` events) and
    ``max_count`` the most events one neuron emits per step (1 for binary and ternary neurons), ``signed`` whether
    a spike can be negative (an event of either sign); ``time_axis`` is
    the axis of the output that runs over time steps. Op counters read them to count events per the papers.
    """

    spike_unit: float = 1.0
    max_count: int = 1
    signed: bool = False

    def spike_counts(self, output: torch.Tensor) -> torch.Tensor:
        return output

    def time_axis(self) -> int:
        """The output axis that runs over time steps (0: ``[T, B, ...]`` or the flattened ``[T*B, ...]``)."""
        return 0


def neuron_modules(model: nn.Module) -> list[tuple[str, SpikingNeuron]]:
    """Every spiking neuron in ``model`` with its qualified name: the hook points of the firing-rate metrics."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SpikingNeuron)]
