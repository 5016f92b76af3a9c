"""The shared spiking core: multi-step LIF neurons (fixed and learnt tau), the IF neuron (no leak), the integer
MultiSpike neuron, the ternary IF neuron (SWformer's Haar transforms), surrogate gradients, T*B-flattened blocks,
and neuron/surrogate swaps applied to a built model."""

from zoo.core.layers import (
    ConvBNLIF,
    LinearBN,
    MaxPool,
    SeqFlat,
    conv_bn,
    layout_keeping_mean,
    to_channels_last,
    mean_time_tokens,
    spike_add,
    time_major,
    use_fast_paths,
)
from zoo.core.if_neuron import IF
from zoo.core.lif import LIF, PLIF, FusedLIF, lif_reference
from zoo.core.multispike import IntegerSpike, MultiSpike
from zoo.core.neuron import SpikingNeuron, neuron_modules
from zoo.core.surrogate import SURROGATES, Surrogate, make_surrogate
from zoo.core.swap import NEURON_TYPES, SWAP_FIELDS, NeuronSwap, SurrogateSwap, SwapError, SwapRule, swap_components
from zoo.core.ternary import FusedTernaryIF, TernaryIF, ternary_reference

__all__ = [
    "LIF", "PLIF", "IF", "FusedLIF", "lif_reference", "MultiSpike", "IntegerSpike", "TernaryIF", "FusedTernaryIF",
    "ternary_reference", "Surrogate", "SURROGATES", "make_surrogate",
    "SeqFlat", "conv_bn", "layout_keeping_mean", "LinearBN", "MaxPool", "ConvBNLIF", "spike_add", "mean_time_tokens",
    "time_major", "to_channels_last", "use_fast_paths", "SpikingNeuron", "neuron_modules", "NEURON_TYPES", "SWAP_FIELDS",
    "NeuronSwap",
    "SurrogateSwap", "SwapError", "SwapRule", "swap_components",
]
