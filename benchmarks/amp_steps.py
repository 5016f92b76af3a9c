"""AMP (bf16 autocast) training steps of zoo models at full input size: divergence and peak memory, JSON lines.

    python benchmarks/amp_steps.py [--pattern '*.in1k'] [--steps 50] [--batch 4] [--device cuda]

Each model trains ``--steps`` AdamW steps (lr 1e-3, weight decay 0.05, gradients clipped at 5) on one fixed random
batch with random labels; a non-finite loss or gradient norm is a divergence. One JSON object per model.
"""

from __future__ import annotations

import json
import math
import time

import torch
import torch.nn.functional as F

import zoo
from harness.argtypes import OneLineParser, positive_int
from harness.metrics.perf import training_heads


def amp_run(name: str, steps: int, batch: int, device: torch.device, **overrides) -> dict:
    """Train ``name`` (with constructor ``overrides``) for ``steps`` bf16-autocast steps on one random batch;
    report losses, divergence, memory."""
    torch.manual_seed(0)
    model = zoo.create_model(name, **overrides).to(device).train()
    card = model.card
    shape = (batch, card.T, *card.input_shape) if model.input_kind == "dvs" else (batch, *card.input_shape)
    x = torch.randn(shape, device=device)
    y = torch.randint(0, card.num_classes, (batch,), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    losses, diverged, started = [], None, time.perf_counter()
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            heads = training_heads(model(x))  # a kd model trains both heads (distillation against the labels)
        loss = sum(F.cross_entropy(logits.float(), y) for logits in heads) / len(heads)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        losses.append(loss.item())
        if not (math.isfinite(losses[-1]) and math.isfinite(norm.item())):
            diverged = f"step {step + 1}: loss {losses[-1]}, grad norm {norm.item()}"
            break
        optimizer.step()
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"check": "amp_steps", "model": name, "batch": batch, "input_shape": list(x.shape[1:]),
            "steps": len(losses), "first_loss": losses[0], "last_loss": losses[-1], "diverged": diverged,
            "peak_mem_mb": peak, "seconds": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pattern", default="*.in1k")
    parser.add_argument("--steps", type=positive_int, default=50)
    parser.add_argument("--batch", type=positive_int, default=4)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    for name in zoo.list_models(args.pattern):
        try:
            result = amp_run(name, args.steps, args.batch, torch.device(args.device))
        except torch.OutOfMemoryError as err:
            result = {"check": "amp_steps", "model": name, "error": f"out of memory: {str(err).splitlines()[0]}"}
        print(json.dumps(result), flush=True)
        torch.cuda.empty_cache() if args.device == "cuda" else None


if __name__ == "__main__":
    main()
