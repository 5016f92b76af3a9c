"""Firing rates, the Appendix-C energy of a toy model checked by hand, accuracy, speed, and the energy CLI."""

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.metrics import (FiringRates, count_params, latency_ms, measure_energy, peak_memory_mb, throughput,
                             topk_correct)
import zoo
from harness.metrics.energy import format_audit, main
from harness.metrics.neurobench_metrics import NEUROBENCH_KEYS
from zoo.core import LIF, MultiSpike, SeqFlat

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
import engine_nets  # noqa: E402  (registers the tiny test models)


class Toy(nn.Module):
    """Direct encoding over T=4, a 1x1 conv (weight 0.5), a LIF, then Linear(4 -> 3) on the flattened spikes."""

    def __init__(self):
        super().__init__()
        self.stem = SeqFlat(nn.Conv2d(1, 1, 1, bias=False))
        self.lif = LIF()
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            self.stem[0].weight.fill_(0.5)

    def forward(self, x):
        s = self.lif(self.stem(x.unsqueeze(0).expand(4, *x.shape)))
        return self.fc(s.flatten(2)).mean(0)


IMAGE = torch.tensor([[[[8.0, 3.0], [0.5, 1.0]]]])


def test_ops_convention_matches_the_hand_computation():
    # conv output 4.0, 1.5, 0.25, 0.5 held for T=4 steps. LIF (tau 2, threshold 1, hard reset):
    # 4.0 fires at every step (4 spikes), 1.5 charges 0.75 -> 1.125 and fires at t=1 and t=3 (2 spikes),
    # 0.25 and 0.5 never reach 1. Firing rate 6 / 16 = 0.375.
    # MACs: first conv on real pixels, 4 steps x 4 pixels x 1 weight = 16 -> 16 x 4.6 pJ = 73.6 pJ.
    # ACs: Linear on spikes, 6 spikes x 3 outputs = 18 (= 0.375 x T 4 x FLOPs 12) -> 16.2 pJ;
    #      mean of the logits over time: 4 x 3 additions = 12 -> 10.8 pJ.   Total 100.6 pJ.
    report = measure_energy(Toy(), [IMAGE], T=4)
    assert report.firing_per_layer == {"lif": 0.375}
    assert report.macs == 16 and report.acs == 30
    assert report.energy_mj == pytest.approx(100.6e-9, rel=1e-12)
    assert report.summary()["ops"] == {"energy_mj": report.energy_mj, "macs": 16, "acs": 30, "firing_rate": 0.375}
    text = format_audit(report, "ops", "toy")
    assert "0.375" in text and "= 0.0000 mJ per image" in text and "ops (as executed)" in text


def test_paper_convention_matches_the_hand_computation():
    # Eq. 18 on the same toy: the encoding conv once per image, 4 pixels x 1 weight = 4 FLOPs -> 4.6 x 4 = 18.4 pJ
    # (not 4 x 4 as executed). The Linear on spikes: FLOPs per step 4 x 3 = 12, fr = 6 non-zero of 16 = 0.375,
    # T = 4: SOPs = 0.375 x 4 x 12 = 18 -> 0.9 x 18 = 16.2 pJ. The mean over time is no layer of Eq. 18.
    # Total 34.6 pJ.
    report = measure_energy(Toy(), [IMAGE], T=4)
    assert [asdict(r) for r in report.paper_rows] == [
        {"layer": "stem.0", "kind": "conv", "input": "image", "flops": 4.0, "fr": None, "T": 1, "sops": 0.0,
         "energy_pj": pytest.approx(18.4), "fr_rule": None},
        {"layer": "fc", "kind": "matmul", "input": "spikes", "flops": 12.0, "fr": 0.375, "T": 4, "sops": 18.0,
         "energy_pj": pytest.approx(16.2), "fr_rule": "nonzero"}]
    assert report.first_layer_macs == 4 and report.sops == 18
    assert report.paper_energy_mj == pytest.approx(34.6e-9, rel=1e-12)
    assert report.summary()["paper"] == {"energy_mj": report.paper_energy_mj, "first_layer_macs": 4, "sops": 18,
                                         "firing_rate": 0.375}
    text = format_audit(report, "paper")
    assert "4.6 pJ x 4 encoding FLOPs + 0.9 pJ x 18 SOPs" in text


class SpikeAttention(nn.Module):
    """One LIF makes Q = K = V = s; then SSA's ``Q (K^T V)`` (T = 1, no encoding layer)."""

    def __init__(self):
        super().__init__()
        self.lif = LIF()

    def forward(self, x):
        s = self.lif(x.unsqueeze(0))[0]
        return s @ (s.transpose(-2, -1) @ s)


def test_paper_attention_counts_a_nonzero_integer_once_and_never_exceeds_dense():
    # x = 4 fires at once, 0 never: s = [[1, 1], [1, 0]] (3 of 4 non-zero). K^T V = [[2, 1], [1, 1]] (integers,
    # all non-zero). Each matmul is 2 x 2 x 2 = 8 dense FLOPs.
    # ops: K^T V 5 ACs (binary products), Q (K^T V) = sum(s @ [[2, 1], [1, 1]]) = 3 + 2 + 2 + 1 = 8 ACs: 13.
    # paper: K^T V fr = 3/4 x 3/4 -> 4.5 SOPs; Q (K^T V) fr = 3/4 x 1 (the 2 counts once) -> 6 SOPs: 10.5.
    x = torch.tensor([[[4.0, 4.0], [4.0, 0.0]]])
    report = measure_energy(SpikeAttention(), [x], T=1)
    (row,) = report.paper_rows
    assert (row.input, row.flops, row.T, row.sops) == ("spikes", 16.0, 1, 10.5)
    assert row.fr == 10.5 / 16 and report.first_layer_macs == 0
    assert report.acs == 13
    dense_kv = torch.full((1, 2, 2), 4.0)  # all spikes: K^T V = 2 everywhere, Q (K^T V) density 2 when executed
    dense = measure_energy(SpikeAttention(), [dense_kv], T=1)
    assert dense.acs == 8 + 16 and dense.sops == 16  # paper: fr 1 x dense, never above it


class EventToy(nn.Module):
    """A DVS toy: event frames [B, T=2, 1, 2, 2] -> 1x1 conv (weight 4.5) -> LIF -> Linear(4 -> 3), per step."""

    input_kind = "dvs"
    T = 2

    def __init__(self):
        super().__init__()
        self.stem = SeqFlat(nn.Conv2d(1, 1, 1, bias=False))
        self.lif = LIF()
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            self.stem[0].weight.fill_(4.5)

    def forward(self, x):
        return self.fc(self.lif(self.stem(x.transpose(0, 1))).flatten(2)).mean(0)


def test_event_inputs_are_a_spike_driven_first_layer_in_the_paper_convention():
    # frames t0 = [[2, 0], [0, 1]], t1 = [[0, 0], [0, 3]]: 3 non-zero of 8, fr 0.375 (a count of 2 or 3 once).
    # first conv: FLOPs per step 4, T 2 -> SOPs 0.375 x 2 x 4 = 3, no 4.6 pJ term.
    # conv outputs t0 = 9, 0, 0, 4.5; t1 = 0, 0, 0, 13.5 -> spikes t0 at pixels 0 and 3, t1 at pixel 3: fr 3/8.
    # Linear: FLOPs per step 12, T 2 -> SOPs 0.375 x 2 x 12 = 9.  Energy 0.9 x 12 = 10.8 pJ.
    frames = torch.tensor([[[[2.0, 0.0], [0.0, 1.0]]], [[[0.0, 0.0], [0.0, 3.0]]]]).unsqueeze(0)
    report = measure_energy(EventToy(), [frames])
    first, fc = report.paper_rows
    assert (first.input, first.flops, first.fr, first.T, first.sops) == ("events", 4.0, 0.375, 2, 3.0)
    assert (fc.input, fc.flops, fc.fr, fc.T, fc.sops) == ("spikes", 12.0, 0.375, 2, 9.0)
    assert report.first_layer_macs == 0
    assert report.paper_energy_mj == pytest.approx(10.8e-9, rel=1e-12)
    assert report.macs == 0 and report.rows[0].count == 6  # ops: event counts with multiplicity (2 + 1 + 3)


def test_energy_is_averaged_per_image_over_batches():
    one = measure_energy(Toy(), [IMAGE], T=4)
    three = measure_energy(Toy(), [IMAGE.expand(2, 1, 2, 2), IMAGE], T=4)
    assert three.images == 3
    assert three.energy_mj == pytest.approx(one.energy_mj, rel=1e-12)
    assert three.paper_energy_mj == pytest.approx(one.paper_energy_mj, rel=1e-12)
    assert [r.T for r in three.paper_rows] == [1, 4]


def test_a_model_without_time_steps_needs_T():
    with pytest.raises(ValueError, match="no attribute T"):
        measure_energy(Toy(), [IMAGE])


def test_firing_rates_per_layer_overall_and_never_called():
    model = nn.ModuleDict({"used": LIF(), "unused": LIF()})
    with FiringRates(model) as fr:
        model["used"](torch.full((4, 2, 3), 1.5))
    assert fr.rate("used") == 0.5
    assert fr.overall() == 0.5
    with pytest.raises(ValueError, match="'unused' was never called"):
        fr.rate("unused")
    assert fr.table()["never_called"] == ["unused"]
    with pytest.raises(ValueError, match="no zoo.core spiking neuron"):
        FiringRates(nn.Linear(2, 2))


def test_an_integer_neuron_fires_its_spike_counts():
    """MultiSpike (SDT v3) emits counts 0..D scaled by 1/D: its rate is the mean count per neuron and step."""
    neuron = MultiSpike(D=4)
    with FiringRates(neuron) as fr:
        neuron(torch.tensor([0.2, 1.4, 2.6, 9.0]))  # counts 0, 1, 3, 4
    assert fr.rate("") == pytest.approx(2.0)


def test_topk_and_params():
    logits = torch.tensor([[0.1, 0.5, 0.2, 0.9, 0.0, 0.3], [0.9, 0.1, 0.2, 0.3, 0.4, 0.5]])
    assert topk_correct(logits, torch.tensor([1, 0]), (1, 2)) == {1: 1, 2: 2}
    soft = torch.tensor([[0.0, 0.1, 0.0, 0.9, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    assert topk_correct(logits, soft, (1, 5)) == {1: 1, 5: 2}
    assert count_params(nn.Linear(4, 3)) == 15


def test_speed_and_memory_are_measured():
    model = engine_nets.TinySpikingNet(2, 10, 3, "static")
    x = torch.randn(4, 3, 32, 32)
    assert throughput(model, x, steps=2) > 0
    assert throughput(model, x, steps=1, train=True) > 0
    lat = latency_ms(model, x[:1], repeats=3, warmup=1)
    assert 0 < lat["median_ms"] <= lat["p90_ms"]
    assert peak_memory_mb(torch.device("cpu")) > 0


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


CLAIMED = "test_tiny_card.digits"
if CLAIMED not in zoo.list_models("test_tiny*"):
    zoo.register_model(replace(zoo.model_card(engine_nets.STATIC), name=CLAIMED, claimed_energy_mj=0.5),
                       lambda T=2, num_classes=10: engine_nets.TinySpikingNet(T, num_classes, 3, "static"))


def test_energy_cli_on_random_weights_says_so_warns_when_silent_and_shows_no_claim(capsys):
    assert main([CLAIMED, "--images", "3", "--batch-size", "2", "--json", "--no-neurobench"]) == 0
    out = capsys.readouterr().out
    report = _last_json(out)
    assert report["weights"] == "random (seed 0)" and report["images"] == 3 and report["convention"] == "paper"
    assert report["firing_rate"] < 0.01 and "the network is silent" in out
    assert "weights are random" in out and "paper claim:" not in out and "0.5 mJ" not in out
    assert main([CLAIMED, "--images", "3", "--calibrate-bn", "--no-neurobench", "--json"]) == 0
    calibrated = capsys.readouterr().out
    assert _last_json(calibrated)["firing_rate"] >= 0.01 and "silent" not in calibrated


def test_energy_cli_with_a_checkpoint_compares_with_the_paper_claim(tmp_path, capsys):
    torch.manual_seed(3)
    path = tmp_path / "weights.pt"
    torch.save({"model": zoo.create_model(CLAIMED).state_dict()}, path)
    assert main([CLAIMED, "--checkpoint", str(path), "--convention", "ops", "--json", "--no-neurobench"]) == 0
    out = capsys.readouterr().out
    report = _last_json(out)
    assert report["weights"] == str(path) and report["claimed_energy_mj"] == 0.5
    assert f"paper claim: 0.5 mJ; measured (ops): {report['energy_mj']:.4f} mJ" in out
    assert "weights are random" not in out
    assert report["first_layer_macs"] == sum(r["count"] for r in report["per_layer"] if r["layer"] == "stem.0")
    assert report["sops"] == report["acs"]


def test_energy_cli_loads_official_weights_through_the_key_map(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parents[2] / "zoo"))
    from official_reference import load_references, seeded_state

    entry = load_references()["spikformer_cifar10"]
    path = tmp_path / "official.pth"
    torch.save({"model": seeded_state(entry["keys"])}, path)
    assert main(["spikformer_4_384.cifar10", "--checkpoint", str(path), "--images", "1", "--no-neurobench"]) == 0
    assert "paper claim: none on the model card" in capsys.readouterr().out


def test_done_when_spikformer_paper_json_counts_the_encoding_conv_once_and_carries_neurobench(capsys):
    assert main(["spikformer_4_384.cifar10", "--convention", "paper", "--json", "--images", "1"]) == 0
    report = _last_json(capsys.readouterr().out)
    assert {"model", "convention", "weights", "images", "energy_mj", "first_layer_macs", "sops", "firing_rate",
            "per_layer", "neurobench"} <= set(report)
    conv = zoo.create_model("spikformer_4_384.cifar10").patch_embed.convs.stages[0].conv_bn[0]
    once = 32 * 32 * conv.out_channels * conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert report["first_layer_macs"] == once  # not T x once
    (encoding,) = [r for r in report["per_layer"] if r["input"] == "image"]
    assert encoding["energy_pj"] == pytest.approx(4.6 * once)
    assert report["energy_mj"] == pytest.approx((4.6 * once + 0.9 * report["sops"]) / 1e9)
    assert set(NEUROBENCH_KEYS) <= set(report["neurobench"])


@pytest.mark.parametrize("argv, message", [
    (["no_such_model"], "unknown model 'no_such_model'"),
    ([engine_nets.STATIC, "--convention", "joules"], "invalid choice: 'joules'"),
    ([engine_nets.STATIC, "--checkpoint", "/nonexistent.pt"], "--checkpoint /nonexistent.pt: no such file"),
    ([engine_nets.STATIC, "--images", "0"], "argument --images: expected a whole number >= 1, got 0"),
    ([engine_nets.DVS], "takes event frames: pass --dataset"),
])
def test_energy_cli_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_energy_cli_on_event_data(capsys):
    assert main([engine_nets.DVS, "--dataset", "digits_dvs", "--images", "4", "--batch-size", "4", "--json"]) == 0
    report = _last_json(capsys.readouterr().out)
    assert report["inputs"] == "digits_dvs/test, first 4 images"
    assert report["first_layer_macs"] == 0 and report["per_layer"][0]["input"] == "events"
