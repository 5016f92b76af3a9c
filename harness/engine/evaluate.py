"""Evaluation: loss, top-1 and top-5 over a loader (summed over ranks under torch.distributed), with img/s."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from harness.metrics import topk_correct


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision in ``dtype`` when it is set (the trainer sets it on CPU only for ``precision: bf16``)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def evaluate(model: nn.Module, loader: Iterable, device: torch.device | None = None,
             amp_dtype: torch.dtype | None = None, limit_batches: int | None = None,
             channels_last: bool = False, predictions: list[torch.Tensor] | None = None) -> dict[str, float]:
    """Top-1/top-5 accuracy (%) and mean cross-entropy of ``model``'s time-averaged logits over ``loader``; with
    ``predictions`` (a list), each batch's predicted class ids are appended to it, on the CPU."""
    device = device or next(model.parameters()).device
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # loss, top1, top5, images
    start = time.perf_counter()
    with torch.no_grad():
        for i, (x, y) in enumerate(loader):
            if limit_batches is not None and i >= limit_batches:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp_dtype):
                logits = model(x)
            logits = logits.float()
            hits = topk_correct(logits, y, (1, 5))
            if predictions is not None:
                predictions.append(logits.argmax(1).cpu())
            sums += torch.tensor([float(F.cross_entropy(logits, y, reduction="sum")), hits[1], hits[5], len(y)],
                                 dtype=torch.float64)
    if dist.is_available() and dist.is_initialized():
        reduced = sums.to(device)
        dist.all_reduce(reduced)
        sums = reduced.cpu()
    loss, top1, top5, images = sums.tolist()
    if images == 0:
        raise ValueError("evaluation saw no samples: the evaluation loader is empty")
    return {"loss": loss / images, "top1": 100.0 * top1 / images, "top5": 100.0 * top5 / images,
            "images": int(images), "img_s": images / (time.perf_counter() - start)}
