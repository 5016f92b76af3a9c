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
from harness.engine.numerics import FastChoice
from harness.recipe import load_recipe
from zoo.core.layers import SeqFlat
from zoo.core.lif import LIF

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
    exact = precision_step.train_step(copy.deepcopy(model), x, y, loss_fn, precision_step.FP32)
    fast = precision_step.train_step(copy.deepcopy(model), x, y, loss_fn, precision_step.BF16)
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
    exact = precision_step.train_step(copy.deepcopy(model), x, y, loss_fn, precision_step.FP32)
    fast = precision_step.train_step(frozen, x, y, loss_fn, precision_step.BF16)
    assert precision_step.one_mode_only(exact, fast) == ["head.weight"]
    assert precision_step.one_mode_only(exact, exact) == []
    lines = precision_step.report(exact, fast, show=3)
    assert "zero or missing gradient in one mode only: head.weight" in lines
    assert "non-finite gradient in bf16: 0 parameters" in lines


def test_a_non_finite_gradient_is_named(model_and_batch):
    model, x, y, loss_fn = model_and_batch
    exact = precision_step.train_step(copy.deepcopy(model), x, y, loss_fn, precision_step.FP32)
    broken = copy.deepcopy(exact)
    broken.grads["head.weight"] = torch.full_like(exact.grads["head.weight"], float("nan"))
    assert precision_step.non_finite(exact) == [] and precision_step.non_finite(broken) == ["head.weight"]
    assert "non-finite gradient in bf16: 1 parameters (head.weight...)" in precision_step.report(exact, broken, 3)


def test_the_fast_mode_is_set_up_as_a_train_fast_run_of_its_choice(model_and_batch):
    model, x, _, _ = model_and_batch
    choice = FastChoice("native-bf16", "bf16", True, False, "fused", "native bf16")
    mode = precision_step.Mode.of_fast(choice)
    assert (mode.dtype, mode.channels_last, mode.fast_paths) == (torch.bfloat16, True, True)
    fast_model = copy.deepcopy(model)
    fed = mode.prepare(fast_model, x)
    assert fed.is_contiguous(memory_format=torch.channels_last)
    assert not x.is_contiguous(memory_format=torch.channels_last)
    layers = [m for m in fast_model.modules() if isinstance(m, (SeqFlat, LIF))]
    assert layers and all(m.fast for m in layers)
    assert not any(m.fast for m in model.modules() if isinstance(m, (SeqFlat, LIF)))
    fp32_choice = FastChoice("avx2-only", "fp32", False, False, "fused", "no native bf16")
    assert precision_step.Mode.of_fast(fp32_choice).dtype is None


def test_the_fast_paths_step_takes_the_first_batch_norm_over_the_b_distinct_images(model_and_batch):
    model, x, y, loss_fn = model_and_batch  # T=2 copies of B=4 static 16x16 images; the first layer keeps 16x16
    exact_model, fast_model = copy.deepcopy(model), copy.deepcopy(model)
    precision_step.train_step(exact_model, x, y, loss_fn, precision_step.FP32)
    precision_step.train_step(fast_model, x, y, loss_fn, precision_step.Mode("fast paths", fast_paths=True))
    first_bn = next(name for name, b in model.named_buffers() if name.endswith("running_var"))
    exact_var, fast_var = (dict(m.named_buffers())[first_bn].double() for m in (exact_model, fast_model))
    # running var = 0.9 + 0.1 x the unbiased batch variance, over n = B*H*W values per channel in the fast path
    # and T*B*H*W in exact mode: the same values, so the two differ by the ratio of the n / (n - 1) corrections
    fast_n, exact_n = 4 * 16 * 16, 2 * 4 * 16 * 16
    expected = (fast_n / (fast_n - 1)) / (exact_n / (exact_n - 1))  # 1.00049
    ratio = (fast_var - 0.9) / (exact_var - 0.9)
    torch.testing.assert_close(ratio, torch.full_like(ratio, expected), rtol=1e-4, atol=0)


def test_an_unknown_model_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as exit_info:
        precision_step.main(["no_such_model.cifar10"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err == "error: precision_step.py: suites/smoke.yaml: no run of no_such_model.cifar10\n"
