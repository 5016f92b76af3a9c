"""Firing rates, the Appendix-C energy of a toy model checked by hand, accuracy, speed, and the energy CLI."""

import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.metrics import (FiringRates, count_params, latency_ms, measure_energy, peak_memory_mb, throughput,
                             topk_correct)
from harness.metrics.energy import format_audit, main
from zoo.core import LIF, SeqFlat

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


def test_toy_energy_matches_the_hand_computation():
    # conv output 4.0, 1.5, 0.25, 0.5 held for T=4 steps. LIF (tau 2, threshold 1, hard reset):
    # 4.0 fires at every step (4 spikes), 1.5 charges 0.75 -> 1.125 and fires at t=1 and t=3 (2 spikes),
    # 0.25 and 0.5 never reach 1. Firing rate 6 / 16 = 0.375.
    # MACs: first conv on real pixels, 4 steps x 4 pixels x 1 weight = 16 -> 16 x 4.6 pJ = 73.6 pJ.
    # ACs: Linear on spikes, 6 spikes x 3 outputs = 18 (= 0.375 x T 4 x FLOPs 12) -> 16.2 pJ;
    #      mean of the logits over time: 4 x 3 additions = 12 -> 10.8 pJ.   Total 100.6 pJ.
    report = measure_energy(Toy(), [IMAGE])
    assert report.firing_per_layer == {"lif": 0.375}
    assert report.macs == 16 and report.acs == 30
    assert report.energy_mj == pytest.approx(100.6e-9, rel=1e-12)
    text = format_audit(report, "toy", claimed_mj=1.0)
    assert "0.375" in text and "(paper: 1.0 mJ)" in text


def test_energy_is_averaged_per_image_over_batches():
    one = measure_energy(Toy(), [IMAGE])
    three = measure_energy(Toy(), [IMAGE.expand(2, 1, 2, 2), IMAGE])
    assert three.images == 3
    assert three.energy_mj == pytest.approx(one.energy_mj, rel=1e-12)


def test_firing_rates_per_layer_overall_and_never_called():
    model = nn.ModuleDict({"used": LIF(), "unused": LIF()})
    with FiringRates(model) as fr:
        model["used"](torch.full((4, 2, 3), 1.5))
    assert fr.rate("used") == 0.5
    assert fr.overall() == 0.5
    with pytest.raises(ValueError, match="'unused' was never called"):
        fr.rate("unused")
    assert fr.table()["never_called"] == ["unused"]
    with pytest.raises(ValueError, match="no zoo.core.LIF"):
        FiringRates(nn.Linear(2, 2))


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


def test_energy_cli_prints_the_audit_and_writes_json(tmp_path, capsys):
    out = tmp_path / "energy.json"
    assert main([engine_nets.STATIC, "--batches", "2", "--batch-size", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["images"] == 4 and report["energy_mj"] > 0
    assert f"energy per image: {report['energy_mj']:.4f} mJ" in printed
    assert "stem.0" in printed and "lif1" in printed


def test_energy_cli_on_event_data(capsys):
    assert main([engine_nets.DVS, "--dataset", "digits_dvs", "--batches", "1", "--batch-size", "4"]) == 0
    assert "inputs: digits_dvs/test" in capsys.readouterr().out
