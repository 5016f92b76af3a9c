"""Speed and memory: throughput (img/s) for training and evaluation, latency, peak memory."""

from __future__ import annotations

import resource
import statistics
import time

import torch
from torch import nn


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window (GPU only: the CPU figure is the process's lifetime peak RSS)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch since the last reset, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def throughput(model: nn.Module, x: torch.Tensor, steps: int = 5, warmup: int = 1, train: bool = False) -> float:
    """Images per second of forward (eval, no grad) or forward+backward (train) passes on batch ``x``."""
    device = x.device
    model.train(train)

    def step() -> None:
        if train:
            model.zero_grad(set_to_none=True)
            model(x).float().sum().backward()
        else:
            with torch.no_grad():
                model(x)

    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * x.shape[0] / (time.perf_counter() - start)


def latency_ms(model: nn.Module, x: torch.Tensor, repeats: int = 10, warmup: int = 2) -> dict[str, float]:
    """Median and 90th-percentile wall time of one eval forward pass on ``x`` (use batch 1 for latency)."""
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            _sync(x.device)
            start = time.perf_counter()
            model(x)
            _sync(x.device)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[min(len(times) - 1, int(0.9 * len(times)))]}
