"""``torch.compile`` (the engine's ``train.compile``) computes what the uncompiled model computes.

Under compilation the zoo's LIF takes its reference path (per-step autograd) instead of the fused one, so these
tests also hold the two LIF implementations to each other. ``aot_eager`` (graph capture + AOT autograd, no code
generation) runs in seconds and stays in the default suite; ``inductor`` (the engine's default backend, C++
code generation) takes minutes on these CPUs and is marked slow.
"""

import copy
import json
import os

import pytest
import torch

import engine_nets
import zoo
from harness.engine import TrainSpec, train
from harness.engine.trainer import _Trainer, share_compile_cache


def _train_then_eval(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One train-mode forward and backward (BN batch statistics), then an eval-mode forward."""
    out = net.train()(x)
    out.square().mean().backward()
    with torch.no_grad():
        return out.detach(), net.eval()(x)


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_model_matches_the_uncompiled_outputs_gradients_and_statistics(backend):
    torch._dynamo.reset()
    model = zoo.create_model(engine_nets.STATIC, width=16)
    twin = copy.deepcopy(model)
    x = 3 * torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    want_train, want_eval = _train_then_eval(model, x)
    got_train, got_eval = _train_then_eval(torch.compile(twin, backend=backend), x)
    assert want_train.std() > 0 and model.stem[0].weight.grad.abs().sum() > 0  # spikes and surrogate grads flow
    torch.testing.assert_close(got_train, want_train, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got_eval, want_eval, rtol=1e-4, atol=1e-6)
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-7, msg=lambda m: f"{name}: {m}")
    for (name, a), b in zip(model.named_buffers(), twin.buffers()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7, msg=lambda m: f"{name}: {m}")


@pytest.mark.slow
def test_compiled_training_matches_uncompiled_training(tmp_path):
    def run(compile_: bool) -> dict:
        spec = TrainSpec(model=engine_nets.STATIC, dataset="digits", recipe="digits", seed=0, epochs=1,
                         model_kwargs={"width": 32}, energy_images=0, limit_train_batches=4, limit_eval_batches=2,
                         overrides={"optim.lr": 1e-2, "optim.warmup_epochs": 0, "train.compile": compile_})
        return train(spec, tmp_path / f"compile_{compile_}")

    compiled, eager = run(True), run(False)
    assert compiled["status"] == eager["status"] == "finished" and compiled["global_step"] == 4
    config = json.loads((tmp_path / "compile_True" / "config.json").read_text())
    assert config["recipe"]["train"]["compile"] is True
    for key in ("train_loss", "eval_loss"):
        assert compiled["last"][key] == pytest.approx(eager["last"][key], rel=1e-4), key


def test_a_compiled_run_keeps_the_compiler_cache_beside_its_results(tmp_path, monkeypatch):
    """Compiling costs minutes on a CPU: runs of one results root (seeds, resumes, SLURM nodes) share one cache;
    a cache the user chose wins."""
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    share_compile_cache(tmp_path / "runs" / "0123456789abcdef")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / ".cache" / "torchinductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/elsewhere")
    share_compile_cache(tmp_path / "runs" / "0123456789abcdef")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "/elsewhere"


def test_the_trainer_shares_the_cache_only_when_it_compiles(tmp_path, monkeypatch):
    for compile_ in (False, True):
        monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
        spec = TrainSpec(model=engine_nets.STATIC, dataset="digits", recipe="digits", seed=0, epochs=1,
                         model_kwargs={"width": 8}, energy_images=0, overrides={"train.compile": compile_})
        _Trainer(spec, tmp_path / "runs" / f"run{compile_}")
        shared = os.environ.get("TORCHINDUCTOR_CACHE_DIR") == str(tmp_path / ".cache" / "torchinductor")
        assert shared == compile_
