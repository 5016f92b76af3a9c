"""The spikingjelly conventions (`memory`, `lemaire`) equal spikingjelly's estimators called directly on an
independently built spikingjelly network with the same weights; refusals; the break-even firing rate by hand."""

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("spikingjelly")
from spikingjelly.activation_based import functional, layer, neuron, surrogate  # noqa: E402
from spikingjelly.activation_based.op_counter import (LemaireEnergyConfig, estimate_lemaire_energy,  # noqa: E402
                                                      estimate_simple_energy)

import zoo  # noqa: E402
from harness.metrics.break_even import break_even, format_break_even, qnn_activation_bits  # noqa: E402
from harness.metrics.energy import PaperRow, calibrate_batch_norm, main  # noqa: E402
from harness.metrics.memory_energy import (UnsupportedModelError, check_supported, format_memory_audit,  # noqa: E402
                                           measure_memory_energy)
from zoo.core import LIF, PLIF, MultiSpike, SeqFlat, TernaryIF  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
import engine_nets  # noqa: E402  (registers the tiny test models)

T, WIDTH = 2, 8


class SpikingJellyTwin(nn.Module):
    """``engine_nets.TinySpikingNet`` written with spikingjelly's own parts (SeqToANNContainer, multi-step LIFNode)."""

    def __init__(self) -> None:
        super().__init__()

        def lif():
            return neuron.LIFNode(tau=2.0, detach_reset=True, surrogate_function=surrogate.Sigmoid(), step_mode="m")

        self.stem = layer.SeqToANNContainer(nn.Conv2d(3, WIDTH, 3, 2, 1, bias=False), nn.BatchNorm2d(WIDTH))
        self.lif1 = lif()
        self.conv = layer.SeqToANNContainer(nn.Conv2d(WIDTH, WIDTH, 3, 2, 1, bias=False), nn.BatchNorm2d(WIDTH))
        self.lif2 = lif()
        self.head = nn.Linear(WIDTH, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.lif2(self.conv(self.lif1(self.stem(x.unsqueeze(0).repeat(T, 1, 1, 1, 1)))))
        out = self.head(s.mean(dim=(3, 4))).mean(0)
        functional.reset_net(self)
        return out


def _ours_and_twin():
    torch.manual_seed(0)
    ours = zoo.create_model(engine_nets.STATIC, T=T, width=WIDTH)
    images = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    calibrate_batch_norm(ours, [images])  # untrained weights: normalised inputs so that the LIFs fire
    twin = SpikingJellyTwin()
    twin.load_state_dict(ours.state_dict())  # SeqToANNContainer is a Sequential: the same keys
    twin.eval()
    assert torch.allclose(ours.eval()(images), twin(images), atol=1e-6)
    return ours, twin, [images[:1], images[1:3], images[3:]]


def test_memory_convention_equals_spikingjelly_simple_estimator_on_an_independent_twin():
    ours, twin, batches = _ours_and_twin()
    result = measure_memory_energy(ours, batches, "memory")
    direct = [estimate_simple_energy(twin, x) for x in batches]
    assert direct[0].counts["synop"] > 0, "the twin must spike for the comparison to mean anything"
    assert result.model_id == direct[0].model_info.model_id == "simple_horowitz_step_composite_v1"
    assert result.images == 4
    assert result.energy_pj == pytest.approx(sum(r.energy_total_pj for r in direct) / 4, rel=1e-12)
    for key in direct[0].counts:
        assert result.counts[key] == sum(r.counts[key] for r in direct) / 4, key
    for key in direct[0].breakdown_pj:
        assert result.breakdown_pj[key] == pytest.approx(sum(r.breakdown_pj[key] for r in direct) / 4, rel=1e-12)
    assert result.parameters["e_memory_pj_per_bit"] == pytest.approx(3.12)


def test_memory_per_layer_breakdown_adds_up_and_counts_the_stem_weights_by_hand():
    ours, _, batches = _ours_and_twin()
    result = measure_memory_energy(ours, batches, "memory")
    rows = {r["layer"]: r for r in result.per_layer}
    assert sum(r["energy_pj"] for r in result.per_layer) == pytest.approx(result.energy_pj, rel=1e-9)
    # The stem conv runs on real pixels: every output (T 2 x 8 channels x 8 x 8) reads 3 x 3 x 3 fp32 weights.
    assert rows["stem.0"]["memory_bytes"] == 2 * WIDTH * 8 * 8 * 27 * 4
    assert rows["stem.0"]["mac"] == 2 * WIDTH * 8 * 8 * 27
    # Each LIF reads and writes its fp32 membrane (8 x 8 x 8 after the stem) at each of the T = 2 steps.
    assert rows["lif1.node"]["memory_bytes"] == 2 * 2 * WIDTH * 8 * 8 * 4
    assert "simple_horowitz_step_composite_v1" in format_memory_audit(result)


def test_lemaire_convention_equals_spikingjelly_lemaire_estimator_on_an_independent_twin():
    ours, twin, batches = _ours_and_twin()
    result = measure_memory_energy(ours, batches, "lemaire")
    with pytest.warns(RuntimeWarning, match="BatchNorm2d"):
        direct = [estimate_lemaire_energy(twin, x, config=LemaireEnergyConfig(strict=False)) for x in batches]
    assert result.model_id == direct[0].model_info.model_id == "lemaire_2022_runtime_v1"
    assert result.energy_pj == pytest.approx(sum(r.total_pj for r in direct) / 4, rel=1e-12)
    for key in direct[0].counts:
        assert result.counts[key] == sum(r.counts[key] for r in direct) / 4, key
    assert result.buffer_sizes_bytes == {k: max(r.buffer_sizes_bytes[k] for r in direct)
                                         for k in direct[0].buffer_sizes_bytes}
    assert result.omitted == ["Lemaire formulas do not support BatchNorm2d; its energy is omitted."]
    assert "left out by the estimator: Lemaire formulas do not support BatchNorm2d" in format_memory_audit(result)


@pytest.mark.parametrize("neuron_module, convention, message", [
    (MultiSpike(D=4), "memory", "MultiSpike neurons (0) have no spikingjelly counterpart"),
    (TernaryIF(), "lemaire", "TernaryIF neurons (0) have no spikingjelly counterpart"),
    (PLIF(), "lemaire", "not the ParametricLIFNode that the PLIF 0 becomes"),
])
def test_neurons_the_estimator_cannot_count_are_refused(neuron_module, convention, message):
    with pytest.raises(UnsupportedModelError, match=re.escape(message)):
        check_supported(nn.Sequential(neuron_module), convention)


def test_lif_and_plif_are_accepted_where_spikingjelly_counts_them():
    check_supported(nn.Sequential(LIF(), PLIF()), "memory")
    check_supported(nn.Sequential(LIF()), "lemaire")


@pytest.mark.parametrize("argv, message", [
    (["sdtv3_5m.in1k", "--convention", "memory"], "sdtv3_5m.in1k: MultiSpike neurons"),
    (["swformer_4_384.cifar10", "--convention", "lemaire"], "swformer_4_384.cifar10: TernaryIF neurons"),
    (["spikingresformer_dvsg.dvs128", "--convention", "lemaire"], "IFNode/LIFNode only"),
])
def test_energy_cli_refuses_a_model_the_estimator_cannot_take_in_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("convention, model_id", [("memory", "simple_horowitz_step_composite_v1"),
                                                  ("lemaire", "lemaire_2022_runtime_v1")])
def test_energy_cli_json_carries_the_estimator_model_id_and_the_break_even(convention, model_id, capsys):
    assert main([engine_nets.STATIC, "--convention", convention, "--images", "2", "--calibrate-bn",
                 "--no-neurobench", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["convention"] == convention and report["model_id"] == model_id
    assert report["model_info"]["model_id"] == model_id and report["energy_mj"] > 0
    assert report["break_even_firing_rate"] == pytest.approx(4.6 / 0.9 / 2)  # every layer runs T = 2 steps
    assert f"spikingjelly {model_id}" in out and "break-even firing rate" in out


def _row(layer, input, flops, fr, steps):
    return PaperRow(layer, "conv", input, flops, fr, steps, 0.0, 0.0)


def test_break_even_firing_rate_by_hand():
    rows = [_row("enc", "image", 100.0, None, 1), _row("a", "spike", 12.0, 0.375, 4), _row("b", "real", 8.0, 0.5, 1)]
    result = break_even(rows, T=4)
    # k = 4.6 / 0.9 = 46/9; s* = k sum F / sum T F = 46/9 x 20 / (4 x 12 + 1 x 8) = 920 / 504; the encoding cancels.
    assert result.break_even_firing_rate == pytest.approx(920 / 504, rel=1e-12)
    # measured: (0.375 x 4 x 12 + 0.5 x 1 x 8) / 56 = 22 / 56
    assert result.measured_firing_rate == pytest.approx(22 / 56, rel=1e-12) and result.snn_wins
    assert [r["break_even_firing_rate"] for r in result.per_layer] == pytest.approx([46 / 9 / 4, 46 / 9])
    assert result.qnn_activation_bits == 3  # ceil(log2(4 + 1))
    sparse = break_even(rows, T=4, e_mac_pj=1.0, e_ac_pj=0.5, qnn_sparsity=0.75)
    # k = 2, (1 - gamma) = 0.25: 0.5 x 20 / 56
    assert sparse.break_even_firing_rate == pytest.approx(10 / 56, rel=1e-12) and not sparse.snn_wins
    assert "arXiv 2409.08290" in format_break_even(sparse)


def test_break_even_is_the_papers_closed_form_when_every_layer_runs_T_steps():
    rows = [_row("a", "spike", 30.0, 0.1, 5), _row("b", "spike", 70.0, 0.2, 5)]
    assert break_even(rows, T=5, e_mac_pj=3.0, e_ac_pj=1.0, qnn_sparsity=0.5).break_even_firing_rate == \
        pytest.approx(3.0 * 0.5 / 5)


def test_break_even_without_spike_driven_layers_and_bad_sparsity():
    assert break_even([_row("enc", "image", 10.0, None, 1)], T=4).break_even_firing_rate is None
    with pytest.raises(ValueError, match="qnn_sparsity"):
        break_even([], T=4, qnn_sparsity=1.0)
    assert [qnn_activation_bits(t) for t in (1, 2, 3, 4, 7, 8, 15)] == [1, 2, 2, 3, 3, 4, 4]


class Stacked(nn.Module):
    """Two 1x1 convs kept in a ModuleList (a container that never runs itself), a LIF, and a sum at the top."""

    T = 2

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(SeqFlat(nn.Conv2d(1, 1, 1, bias=False)) for _ in range(2))
        self.lif = LIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0).expand(self.T, *x.shape)
        for conv in self.convs:
            h = conv(h)
        return self.lif(h).sum()


def test_memory_per_layer_rows_nest_modulelist_members_in_the_enclosing_module():
    result = measure_memory_energy(Stacked(), [torch.randn(1, 1, 2, 2)], "memory")
    rows = {r["layer"]: r for r in result.per_layer}
    # Each conv runs on real values: T 2 x 4 pixels = 8 MACs, each reading its one fp32 weight (32 bytes).
    assert rows["convs.0.0"]["mac"] == rows["convs.1.0"]["mac"] == 8
    assert rows["convs.0.0"]["memory_bytes"] == 32
    # The top level only adds up the 8 LIF outputs (7 ACs): the convs' MACs are not left there.
    assert rows["(top level)"] == {"layer": "(top level)", "mac": 0.0, "ac": 7.0, "memory_bytes": 0.0,
                                   "energy_pj": pytest.approx(6.3)}
    assert all(v >= 0 for r in result.per_layer for v in r.values() if isinstance(v, float))
