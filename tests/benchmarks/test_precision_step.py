"""benchmarks/precision_step.py: one real training step in fp32 and bf16 from the same weights, compared."""

from __future__ import annotations

import copy
import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

import zoo
from harness.engine.loss import TrainLoss
from harness.recipe import load_recipe

REPO = Path(__file__).parents[2]
_spec = importlib.util.spec_from_file_location("precision_step", REPO / "benchmarks" / "precision_step.py")
precision_step = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = precision_step  # its dataclass looks its module up
_spec.loader.exec_module(precision_step)


@pytest.fixture(scope="module")
def model_and_batch():
    torch.manual_seed(0)
    model = zoo.create_model("spikformer_4_384.cifar10", T=2, num_classes=10, dim=32, depth=1, heads=2)
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    return model, x, y, TrainLoss(load_recipe("digits").train)


def test_the_bf16_step_feeds_its_neurons_bf16_and_the_fp32_step_fp32(model_and_batch):
    model, x, y, loss_fn = model_and_batch
    exact = precision_step.train_step(copy.deepcopy(model), x, y, loss_fn, None)
    fast = precision_step.train_step(copy.deepcopy(model), x, y, loss_fn, torch.bfloat16)
    assert set(exact.input_dtypes.values()) == {torch.float32}
    assert set(fast.input_dtypes.values()) == {torch.bfloat16}
    assert exact.rates.keys() == fast.rates.keys() and len(exact.rates) > 3
    assert exact.loss != fast.loss and abs(exact.loss - fast.loss) < 0.05
    rows = precision_step.gradient_rows(exact, fast)
    assert len(rows) == sum(g is not None for g in exact.grads.values())
    cosines = [r[0] for r in rows if not math.isnan(r[0])]
    assert cosines == sorted(cosines) and cosines[-1] > 0.99  # most of the network agrees on the gradient


def test_a_parameter_frozen_in_one_mode_only_is_named(model_and_batch):
    model, x, y, loss_fn = model_and_batch
    frozen = copy.deepcopy(model)
    frozen.head.weight.requires_grad_(False)
    exact = precision_step.train_step(copy.deepcopy(model), x, y, loss_fn, None)
    fast = precision_step.train_step(frozen, x, y, loss_fn, torch.bfloat16)
    assert precision_step.one_mode_only(exact, fast) == ["head.weight"]
    assert precision_step.one_mode_only(exact, exact) == []
    lines = precision_step.report(exact, fast, show=3)
    assert "zero or missing gradient in one mode only: head.weight" in lines


def test_an_unknown_model_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as exit_info:
        precision_step.main(["no_such_model.cifar10"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err == "error: precision_step.py: suites/smoke.yaml: no run of no_such_model.cifar10\n"
