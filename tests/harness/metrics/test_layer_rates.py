"""Per-layer firing rates per time step (``FiringRates.table()['per_layer_step']``), folded into the energy pass
(``measure_energy``'s ``on_output``), and split into the papers' block x layer table."""

import pytest
import torch
from torch import nn

from harness.metrics import FiringRates, measure_energy
from harness.metrics.layer_rates import NO_LAYER, block_and_layer, layer_rates, render_layer_rates
from zoo.core import SpikingNeuron


@pytest.mark.parametrize("name, expected", [
    ("stages.2.0.attn.q.lif", ("stages.2.0", "attn.q.lif")),
    ("blocks.3.mlp.fc1_lif", ("blocks.3", "mlp.fc1_lif")),
    ("patch_embed.proj_lif", ("patch_embed", "proj_lif")),
    ("embeds.0.layers.1.lif", ("embeds.0", "layers.1.lif")),
    ("stage1.0.tssa.q_lif", ("stage1.0", "tssa.q_lif")),
    ("head_lif", ("head_lif", NO_LAYER)),
])
def test_block_and_layer_come_from_the_module_name(name, expected):
    assert block_and_layer(name) == expected


class _Threshold(SpikingNeuron):
    def forward(self, x):
        return (x > 0).float()


class _Net(nn.Module):
    """Input [T, B, 4]: the neuron fires where the input is positive."""

    T = 3

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4, bias=False)
        self.lif = _Threshold()
        self.head = nn.Linear(4, 2, bias=False)
        nn.init.eye_(self.fc.weight)

    def forward(self, x):
        return self.head(self.lif(self.fc(x.transpose(0, 1)))).mean(0)


def test_rates_per_time_step_average_to_the_layer_rate():
    net = _Net()
    x = torch.zeros(2, 3, 4)  # [B, T, 4]: step 0 fires 4 of 8, step 1 fires 2 of 8, step 2 none
    x[:, 0] = 1.0
    x[0, 1, :2] = 1.0
    x[1, 1, :2] = 1.0
    with FiringRates(net) as firing, torch.no_grad():
        net(x)
    table = firing.table()
    assert table["per_layer_step"]["lif"] == pytest.approx([1.0, 0.5, 0.0])
    assert sum(table["per_layer_step"]["lif"]) / 3 == pytest.approx(table["per_layer"]["lif"])
    rates = layer_rates(table, 3, 2)
    assert "| lif | - | 1.0000 | 0.5000 | 0.0000 | 0.5000 |" in render_layer_rates(rates)


def test_energy_hands_each_batch_output_to_on_output():
    net, outputs = _Net(), []
    batches = [torch.randn(2, 3, 4), torch.randn(5, 3, 4)]
    report = measure_energy(net, iter(batches), 3, on_output=outputs.append)
    assert [o.shape for o in outputs] == [(2, 2), (5, 2)] and report.images == 7
    with torch.no_grad():
        torch.testing.assert_close(outputs[1], net(batches[1]))
