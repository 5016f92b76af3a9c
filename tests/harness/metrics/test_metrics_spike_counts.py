"""Exact counts for every neuron type of zoo.core in both conventions, with both op counters: a neuron fed known
inputs, then a Linear or conv of a few weights. The arithmetic is written beside each case."""

import pytest
import torch
from torch import nn

from harness.metrics.energy import E_AC_PJ, E_MAC_PJ, PJ_PER_MJ, measure_energy
from zoo.core import LIF, PLIF, MultiSpike, TernaryIF

COUNTERS = ["hooks", "reference"]


class NeuronThenLinear(nn.Module):
    """``[B, T, C]`` steps -> neuron on ``[T, B, C]`` -> Linear(C -> 2, no bias), per step (no reduction, whose
    ACs would add to the count)."""

    def __init__(self, neuron: nn.Module, channels: int, T: int):
        super().__init__()
        self.T = T
        self.neuron = neuron
        self.fc = nn.Linear(channels, 2, bias=False)

    def forward(self, x):
        return self.fc(self.neuron(x.transpose(0, 1)))


def _single(report, kind="matmul"):
    (row,) = [r for r in report.rows if r.kind == kind]
    (paper,) = report.paper_rows
    return row, paper


# LIF (tau 2, threshold 1, hard reset to 0, decay_input): H = V + (X - V) / 2.
# t0: X = [2, 0.5, 4] -> H = [1, 0.25, 2] -> S = [1, 0, 1], V = [0, 0.25, 0].
# t1: X = [0, 2, 0] -> H = [0, 0.25 + 1.75 / 2 = 1.125, 0] -> S = [0, 1, 0].
# PLIF with init_tau 2 has 1 / tau = sigmoid(w) = 0.5: the same spikes.
# TernaryIF (no leak, +1 at H >= 1, -1 at H <= -(0.5 + 0.001)): t0 X = [1.5, -0.7, 0.2] -> S = [1, -1, 0],
# V = [0, 0, 0.2]; t1 X = [0, 0, 0.9] -> H = [0, 0, 1.1] -> S = [0, 0, 1]. |S| is the event count.
BINARY_CASES = {
    "LIF": (LIF, [[2.0, 0.5, 4.0], [0.0, 2.0, 0.0]]),
    "PLIF": (PLIF, [[2.0, 0.5, 4.0], [0.0, 2.0, 0.0]]),
    "TernaryIF": (TernaryIF, [[1.5, -0.7, 0.2], [0.0, 0.0, 0.9]]),
}


@pytest.mark.parametrize("counter", COUNTERS)
@pytest.mark.parametrize("neuron", list(BINARY_CASES))
def test_binary_and_ternary_spikes_are_one_event_each(neuron, counter):
    # 3 events over 2 steps x 3 neurons; each accumulates its weight column into 2 outputs.
    # ops: 3 x 2 = 6 ACs of 2 rows x 3 x 2 = 12 dense, no MAC: 6 x 0.9 = 5.4 pJ.
    # paper: FLOPs per step 3 x 2 = 6, fr = 3 non-zero of 6 = 0.5 ("nonzero"), T = 2: 0.5 x 2 x 6 = 6 SOPs.
    cls, steps = BINARY_CASES[neuron]
    x = torch.tensor([steps])  # [B=1, T=2, 3]
    report = measure_energy(NeuronThenLinear(cls(), 3, T=2), [x], counter=counter)
    row, paper = _single(report)
    assert (row.op_class, row.dense, row.count) == ("AC", 12.0, 6.0) and report.macs == 0
    assert report.energy_mj == pytest.approx(6 * E_AC_PJ / PJ_PER_MJ, rel=1e-12)
    assert (paper.input, paper.flops, paper.fr, paper.T, paper.sops) == ("spikes", 6, 0.5, 2, 6)
    assert paper.fr_rule == "nonzero"
    assert report.paper_energy_mj == pytest.approx(6 * E_AC_PJ / PJ_PER_MJ, rel=1e-12)
    assert report.firing_per_layer["neuron"] == 0.5
    assert report.firing_per_layer_step["neuron"] == pytest.approx([2 / 3, 1 / 3])


# MultiSpike D = 4: X = [1.2, 0, 3, 9] -> counts round(clamp(X, 0, 4)) = [1, 0, 3, 4], output counts / 4 =
# [0.25, 0, 0.75, 1.0] (norm 4) or the counts themselves (norm 1, the official heads). Either way 8 events.
COUNTS_INPUT = [[[1.2, 0.0, 3.0, 9.0]]]  # [B=1, T=1, 4]


@pytest.mark.parametrize("counter", COUNTERS)
@pytest.mark.parametrize("norm", [None, 1.0])
def test_a_multispike_count_k_is_k_events_in_both_conventions(norm, counter):
    # ops: 8 events x 2 outputs = 16 ACs (dense 1 x 4 x 2 = 8): a count of 4 shown as 1.0 is 4 events, not 1.
    # paper ("count" rule, E-SpikeFormer's spike-driven inference): fr = 8 events / 4 neurons = 2,
    # FLOPs 8, T 1: 2 x 1 x 8 = 16 SOPs (the "nonzero" rule would give 3/4 x 8 = 6).
    report = measure_energy(NeuronThenLinear(MultiSpike(D=4, norm=norm), 4, T=1), [torch.tensor(COUNTS_INPUT)],
                            counter=counter)
    row, paper = _single(report)
    assert (row.op_class, row.dense, row.count) == ("AC", 8.0, 16.0) and report.macs == 0
    assert (paper.fr, paper.T, paper.sops, paper.fr_rule) == (2.0, 1, 16.0, "count")
    assert report.energy_mj == report.paper_energy_mj == pytest.approx(16 * E_AC_PJ / PJ_PER_MJ, rel=1e-12)
    assert report.firing_per_layer["neuron"] == 2.0  # the mean count per neuron and step


class MultiSpikeConv(nn.Module):
    """Image -> conv 1x1 (the encoding layer, weight 0.5) -> MultiSpike -> conv 3x3 pad 1 (1 -> 2) -> MultiSpike
    -> Linear (2 x 4 -> 1); T = 1."""

    T = 1

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(1, 1, 1, bias=False)
        self.s1, self.conv, self.s2 = MultiSpike(D=4), nn.Conv2d(1, 2, 3, padding=1, bias=False), MultiSpike(D=4)
        self.fc = nn.Linear(8, 1, bias=False)
        with torch.no_grad():
            self.enc.weight.fill_(0.5)  # not a whole number: real weights (integer weights would be spikes)
            self.conv.weight.fill_(1.1)

    def forward(self, x):
        return self.fc(self.s2(self.conv(self.s1(self.enc(x)))).flatten(1))


@pytest.mark.parametrize("counter", COUNTERS)
def test_a_multispike_network_has_no_dense_mac_after_the_encoding_layer(counter):
    # image [[2.2, 0], [6, 18]] x 0.5: encoding conv 4 MACs. s1 counts [[1, 0], [3, 4]] (8 events).
    # conv 3x3 pad 1 on a 2x2 map: every output pixel sees all 4 inputs -> 8 events x 4 pixels x 2 channels =
    # 64 ACs (dense 8 outputs x 9 taps = 72). Its output: 1.1 x (8 / 4) = 2.2 everywhere -> s2 count 2 each
    # (8 neurons, 16 events) -> Linear 8 -> 1: 16 ACs. MACs: only the encoding layer's 4.
    # paper: encoding 4 FLOPs x 4.6; conv fr = 8 / 4 = 2 ("count") x 72 = 144 SOPs; fc fr 16 / 8 = 2 x 8 = 16.
    x = torch.tensor([[[[2.2, 0.0], [6.0, 18.0]]]])
    report = measure_energy(MultiSpikeConv(), [x], counter=counter)
    macs = [r for r in report.rows if r.op_class == "MAC"]
    assert [(r.layer, r.count) for r in macs] == [("enc", 4.0)]
    counts = {(r.layer, r.op_class): r.count for r in report.rows}
    assert counts[("conv", "AC")] == 64.0 and counts[("fc", "AC")] == 16.0
    assert report.energy_mj == pytest.approx((4 * E_MAC_PJ + 80 * E_AC_PJ) / PJ_PER_MJ, rel=1e-12)
    paper = {r.layer: (r.input, r.fr, r.sops, r.fr_rule) for r in report.paper_rows}
    assert paper == {"enc": ("image", None, 0.0, None), "conv": ("spikes", 2.0, 144.0, "count"),
                     "fc": ("spikes", 2.0, 16.0, "count")}
    assert report.paper_energy_mj == pytest.approx((4 * E_MAC_PJ + 160 * E_AC_PJ) / PJ_PER_MJ, rel=1e-12)


class FlatMultiSpike(nn.Module):
    """``[B, T, C]`` -> time-major ``[T*B, C]`` (as SeqFlat flattens) -> MultiSpike -> Linear."""

    T = 2

    def __init__(self):
        super().__init__()
        self.neuron, self.fc = MultiSpike(D=4, norm=1), nn.Linear(2, 1, bias=False)

    def forward(self, x):
        return self.fc(self.neuron(x.transpose(0, 1).flatten(0, 1)))


def test_per_step_firing_rates_split_a_flattened_time_major_output():
    # B = 2, T = 2: t0 rows (b0, b1) = [1, 0], [2, 2]; t1 rows = [0, 0], [4, 0] -> per step 5 / 4 and 4 / 4.
    x = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [4.0, 0.0]]])
    report = measure_energy(FlatMultiSpike(), [x])
    assert report.firing_per_layer_step == {"neuron": [1.25, 1.0]}
    assert report.firing_per_layer["neuron"] == 9 / 8


def test_on_output_sees_every_batch_output():
    model = NeuronThenLinear(LIF(), 3, T=2)
    batches = [torch.rand(2, 2, 3) * 3, torch.rand(1, 2, 3) * 3]
    seen = []
    measure_energy(model, batches, on_output=seen.append)
    with torch.no_grad():
        expected = [model(x) for x in batches]
    assert len(seen) == 2 and all(torch.equal(a, b) for a, b in zip(seen, expected))


@pytest.mark.parametrize("counter", COUNTERS)
def test_work_done_in_on_output_is_not_counted(counter):
    model = NeuronThenLinear(LIF(), 3, T=2)
    batches = [torch.rand(2, 2, 3) * 3]
    plain = measure_energy(model, batches, counter=counter)
    scored = measure_energy(model, batches, counter=counter, on_output=lambda out: (out @ out.transpose(-1, -2)).sum())
    assert scored.rows == plain.rows and scored.paper_rows == plain.paper_rows


def test_on_a_tiny_e_spikeformer_only_the_encoding_conv_is_dense():
    # every layer after the first MultiSpike is fed integer counts / 4: ACs with multiplicity, rated by "count"
    import zoo
    from harness.metrics.energy import calibrate_batch_norm

    torch.manual_seed(0)
    model = zoo.create_model("sdtv3_5m.in1k", dims=[8, 16, 32, 40], blocks=[1, 1])
    images = [torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))]
    calibrate_batch_norm(model, images)
    report = measure_energy(model, images)
    encoding = {r.layer for r in report.paper_rows if r.input == "image"}
    assert encoding == {"down1_1.conv_bn.0"}
    assert {r.layer for r in report.rows if r.op_class == "MAC"} == encoding
    assert {(r.input, r.fr_rule) for r in report.paper_rows if r.input != "image"} == {("spikes", "count")}
    assert report.acs > 0 and report.firing_overall > 0


class HeadNeuron(nn.Module):
    """A neuron on ``[B, C]`` features (no time axis) in a T = 2 model."""

    T = 2

    def __init__(self):
        super().__init__()
        self.neuron, self.fc = MultiSpike(D=4, norm=1), nn.Linear(3, 1, bias=False)

    def forward(self, x):
        return self.fc(self.neuron(x))


def test_a_neuron_without_time_axis_has_a_rate_but_no_per_step_rates():
    report = measure_energy(HeadNeuron(), [torch.tensor([[1.0, 2.0, 0.0]])])  # batch 1: leading size 1, not T
    assert report.firing_per_layer == {"neuron": 1.0}
    assert report.firing_per_layer_step == {}
