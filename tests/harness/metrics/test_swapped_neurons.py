"""A model with swapped neurons is measured like any other: firing rates and energy count every swapped neuron
(they derive from zoo.core.SpikingNeuron), and the memory-aware estimators take an IF as spikingjelly's IFNode."""

import pytest
import torch

import zoo
from harness.metrics.energy import measure_energy
from harness.metrics.memory_energy import UnsupportedModelError, check_supported
from zoo.core import neuron_modules

SMALL = dict(dim=32, depth=1, heads=2)


@pytest.mark.parametrize("neuron", ["if", "plif", "multispike"])
def test_energy_and_firing_rates_count_every_swapped_neuron(neuron):
    torch.manual_seed(0)
    model = zoo.create_model("spikformer_4_384.cifar10", T=2, neuron=neuron, **SMALL)
    images = torch.randn(2, 3, 16, 16) * 2
    report = measure_energy(model, [images])
    names = [name for name, _ in neuron_modules(model)]
    assert sorted(report.firing_per_layer) == sorted(names) and not report.lif_never_called
    assert report.firing_overall > 0 and report.sops > 0


def test_memory_conventions_take_an_if_and_refuse_what_spikingjelly_lacks():
    if_model = zoo.create_model("spikformer_4_384.cifar10", T=2, neuron="if", **SMALL)
    check_supported(if_model, "lemaire")  # an IFNode is one of Lemaire's neurons
    plif_model = zoo.create_model("spikformer_4_384.cifar10", T=2, neuron="plif", **SMALL)
    with pytest.raises(UnsupportedModelError, match="ParametricLIFNode"):
        check_supported(plif_model, "lemaire")
