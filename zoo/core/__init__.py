"""The shared spiking core: multi-step LIF neurons (fixed and learnt tau), the integer MultiSpike neuron, the ternary
IF neuron (SWformer's Haar transforms), surrogate gradients, and T*B-flattened blocks."""

from zoo.core.layers import (
    ConvBNLIF,
    LinearBN,
    MaxPool,
    SeqFlat,
    conv_bn,
    mean_time_tokens,
    spike_add,
    time_major,
    use_fast_paths,
)
from zoo.core.lif import LIF, PLIF, FusedLIF, lif_reference
from zoo.core.multispike import IntegerSpike, MultiSpike
from zoo.core.neuron import SpikingNeuron, neuron_modules
from zoo.core.surrogate import SURROGATES, Surrogate, make_surrogate
from zoo.core.ternary import FusedTernaryIF, TernaryIF, ternary_reference

__all__ = [
    "LIF", "PLIF", "FusedLIF", "lif_reference", "MultiSpike", "IntegerSpike", "TernaryIF", "FusedTernaryIF",
    "ternary_reference", "Surrogate", "SURROGATES", "make_surrogate",
    "SeqFlat", "conv_bn", "LinearBN", "MaxPool", "ConvBNLIF", "spike_add", "mean_time_tokens",
    "time_major", "use_fast_paths", "SpikingNeuron", "neuron_modules",
]
