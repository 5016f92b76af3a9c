"""A run killed with SIGKILL mid-epoch and resumed ends bit-identical to an uninterrupted run (CPU)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import engine_nets
from harness.engine import TIMING_KEYS, TrainSpec

HERE = Path(__file__).parent
REPO = HERE.parents[2]
CHILD = (
    "import sys, torch; torch.set_num_threads(1); sys.path.insert(0, sys.argv[3]); import engine_nets; "
    "from harness.engine import TrainSpec, train; train(TrainSpec.model_validate_json(sys.argv[1]), sys.argv[2])"
)
# every source of randomness the engine handles: augmentation (flip, erasing), mixup, EMA, accumulation
SPEC = TrainSpec(
    model=engine_nets.STATIC, dataset="digits", recipe="digits", seed=3, epochs=5, train_subset=192,
    checkpoint_every_steps=2, keep_last=3, limit_eval_batches=2,
    overrides={"data.hflip": 0.5, "data.random_erasing": 0.5, "data.mixup_alpha": 0.4, "train.batch_size": 16,
               "train.accum_steps": 2, "train.ema_decay": 0.9, "optim.grad_clip": 2.0},
)


def _start(run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", CHILD, SPEC.model_dump_json(), str(run_dir), str(HERE)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]


def _kill_mid_epoch(run_dir: Path) -> str:
    """Start a run, SIGKILL it as soon as a checkpoint inside epoch 1 exists, return that checkpoint's name."""
    proc = _start(run_dir)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        mid = [p.name for p in (run_dir / "checkpoints").glob("ckpt-e0001-b0000[0-9][1-9].pt")]
        if mid:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return mid[0]
        time.sleep(0.005)
    proc.kill()
    raise AssertionError(f"no mid-epoch checkpoint appeared; stderr: {proc.stderr.read()[-2000:]}")


def _equal(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            if k not in TIMING_KEYS:
                _equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = _start(straight)
    seen = _kill_mid_epoch(killed)
    assert not (killed / "final.json").exists() and "ckpt-e0001" in seen
    _finish(_start(killed))
    _finish(reference)
    assert "resumed from ckpt-e0001-b0000" in (killed / "train.log").read_text()

    last = "checkpoints/ckpt-e0005-b000000.pt"
    a, b = (torch.load(d / last, weights_only=True) for d in (straight, killed))
    for part in ("model", "optimizer", "ema", "rng"):
        _equal(a[part], b[part], part)
    _equal({k: v for k, v in a["progress"].items() if k not in ("wall_time_s",)},
           {k: v for k, v in b["progress"].items() if k not in ("wall_time_s",)}, "progress")
    metrics = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
               for d in (straight, killed)]
    assert len(metrics[0]) == 5
    _equal(metrics[0], metrics[1], "metrics")
    _equal(*(json.loads((d / "final.json").read_text()) for d in (straight, killed)), "final")
