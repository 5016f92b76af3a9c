"""Batch-size invariance: the audit sees the official SSA projection quirk, and only where the model declares it."""

import json

import pytest
import torch
from torch import nn

import zoo
from harness.audit import audit_batches, batch_dependent, load_weights
from harness.cli import main
from harness.metrics.energy import SILENT_FIRING_RATE, silent_network_warning
from harness.metrics.firing import FiringRates

# one shrunk configuration per family (as suites/smoke.yaml), 16x16 inputs
FAMILIES = {
    "msvit_4_384.cifar10": {"widths": [16, 16, 32], "depths": [1, 1, 1], "heads": 2},
    "qkformer_4_384.cifar10": {"widths": [16, 16, 32], "depths": [1, 1, 1], "heads": 2},
    "spikformer_4_384.cifar10": {"dim": 32, "depth": 1, "heads": 2},
    "sdt_2_512.cifar10": {"dim": 32, "depth": 1},
    "sdtv2_10_384.in1k": {"dims": [8, 16, 32, 48]},
}


def active_model(name: str, **overrides) -> nn.Module:
    """A shrunk model whose BatchNorms are set so that spikes reach the last stage (random init is silent)."""
    torch.manual_seed(0)
    model = zoo.create_model(name, T=2, num_classes=10, **FAMILIES[name], **overrides)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.weight.data.uniform_(0.5, 8.0)
            module.bias.data.uniform_(0.2, 1.2)
    return model


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_declared_batch_dependence_is_what_the_audit_measures(name):
    images = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    official = audit_batches(active_model(name), images, batches=(1, 4))
    paper = audit_batches(active_model(name, official_quirks=False), images, batches=(1, 4))
    assert paper["batch_dependent"] is False and paper["max_logit_diff"] == 0.0
    assert official["batch_dependent"] is (name.split("_")[0] in ("msvit", "qkformer"))
    assert (official["max_logit_diff"] > 0) is official["batch_dependent"]


def test_report_gives_top1_at_both_batches_and_their_difference():
    model = active_model("qkformer_4_384.cifar10")
    images = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(8) % 10
    report = audit_batches(model, images, labels, batches=(1, 4))
    with torch.no_grad():
        alone = torch.cat([model(images[i:i + 1]) for i in range(8)]).argmax(1)
        together = torch.cat([model(images[i:i + 4]) for i in (0, 4)]).argmax(1)
    assert report["images"] == 8 and report["batches"] == [1, 4]
    assert report["top1_batch1"] == 100 * (alone == labels).float().mean().item()
    assert report["top1_batch4"] == 100 * (together == labels).float().mean().item()
    assert report["top1_diff"] == report["top1_batch4"] - report["top1_batch1"]
    assert 0 < report["mean_logit_diff"] <= report["max_logit_diff"]
    assert not batch_dependent(nn.Linear(2, 2))


def test_weights_load_from_an_engine_checkpoint_or_a_state_dict(tmp_path):
    source, target = active_model("sdt_2_512.cifar10"), zoo.create_model("sdt_2_512.cifar10", T=2, num_classes=10,
                                                                       **FAMILIES["sdt_2_512.cifar10"])
    torch.save({"model": source.state_dict(), "optimizer": {}}, tmp_path / "engine.pt")
    torch.save(source.state_dict(), tmp_path / "plain.pt")
    for path in ("engine.pt", "plain.pt"):
        load_weights(target, tmp_path / path)
        assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))


@pytest.mark.parametrize("content", [None, b"not a torch file", "pickle"], ids=["missing", "junk", "pickle"])
def test_cli_refuses_a_bad_checkpoint_in_one_line(tmp_path, capsys, content):
    """A missing, unreadable or code-carrying checkpoint: one line naming the file, exit 2, nothing executed."""
    path, marker = tmp_path / "weights.pt", tmp_path / "ran"
    if content == "pickle":
        torch.save({"model": Exploit(marker)}, path)
    elif content is not None:
        path.write_bytes(content)
    assert main(["audit", "spikformer_4_384.cifar10", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --checkpoint {path}: ") and not marker.exists()


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_the_audit_warns_on_a_silent_network_as_the_energy_audit_does(tmp_path, capsys):
    """Random weights hardly spike, so 'predictions changed 0.00%' means nothing: the audit says so with the energy
    audit's constant and wording; weights that spike get no warning."""
    args = ["audit", "qkformer_4_384.cifar10", "--random", "--images", "8", "--batch", "4", "--T", "2", "--json",
            "--set", "widths=[16, 16, 32]", "--set", "depths=[1, 1, 1]", "--set", "heads=2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    silent = json.loads(out.strip().splitlines()[-1])["firing_rate"]
    assert silent < SILENT_FIRING_RATE
    expected = silent_network_warning(silent, "an unchanged prediction says nothing about batch invariance")
    assert expected.startswith("warning: overall firing rate") and expected in out.splitlines()
    torch.save(active_model("qkformer_4_384.cifar10").state_dict(), tmp_path / "active.pt")
    assert main(args + ["--checkpoint", str(tmp_path / "active.pt")]) == 0
    out = capsys.readouterr().out
    assert json.loads(out.strip().splitlines()[-1])["firing_rate"] >= SILENT_FIRING_RATE and "silent" not in out


def test_the_audit_reports_the_firing_rate_of_the_large_batch_pass():
    model = active_model("sdt_2_512.cifar10")
    images = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    report = audit_batches(model, images, batches=(1, 4))
    with FiringRates(model) as firing, torch.no_grad():
        model(images[:4]), model(images[4:])
    assert report["firing_rate"] == pytest.approx(firing.overall()) and report["firing_rate"] > 0
