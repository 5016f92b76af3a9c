"""Atomic checkpoints named by their resume position, keeping the last K plus the best.

A checkpoint ``ckpt-e{epoch}-b{batch}.pt`` resumes at micro-batch ``batch`` of epoch ``epoch``, so names
sort in training order. Every write goes to a temporary file that is fsynced and renamed over the final
name, and the directory is fsynced: a process killed at any moment leaves either the old or the new file. A write
that fails removes its temporary file and raises an ``OSError`` naming the final path (``harness.atomicfile``).
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.atomicfile import fsync_dir, temp_name, writing

NAME = re.compile(r"^ckpt-e(\d{4})-b(\d{6})\.pt$")
BEST = "best.pt"


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` via a fsynced temporary file and a rename."""
    tmp = temp_name(path)
    with writing(path, tmp):
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)


class CheckpointStore:
    """The ``checkpoints/`` directory of one run."""

    def __init__(self, directory: Path, keep_last: int) -> None:
        self.dir = Path(directory)
        self.keep_last = keep_last

    def paths(self) -> list[Path]:
        """Checkpoints in training order (oldest first)."""
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir() if NAME.match(p.name))

    def save(self, state: dict[str, Any], epoch: int, batch: int, best: bool = False) -> Path:
        """Write the checkpoint for resume position (epoch, batch); mark it best; prune old ones."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"ckpt-e{epoch:04d}-b{batch:06d}.pt"
        atomic_torch_save(state, path)
        if best:
            self._mark_best(path)
        for old in self.paths()[: -self.keep_last]:
            old.unlink()
        for stale in self.dir.glob(".*.tmp*"):
            stale.unlink(missing_ok=True)
        return path

    def _mark_best(self, path: Path) -> None:
        tmp = temp_name(self.dir / BEST)
        with writing(self.dir / BEST, tmp):
            tmp.unlink(missing_ok=True)
            try:
                os.link(path, tmp)
            except OSError:
                atomic_torch_save(torch.load(path, weights_only=True), tmp)
            os.replace(tmp, self.dir / BEST)
            fsync_dir(self.dir)

    def load_latest(self) -> dict[str, Any] | None:
        """The newest readable checkpoint (an unreadable one is skipped with its error kept), or None."""
        errors = []
        for path in reversed(self.paths()):
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # a damaged file: fall back to the previous checkpoint
                errors.append(f"{path.name}: {err}")
                continue
            state["loaded_from"] = path.name
            state["skipped"] = errors
            return state
        if errors:
            raise RuntimeError(f"no readable checkpoint in {self.dir}: " + "; ".join(errors))
        return None


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and python RNG states, in a form ``torch.load(weights_only=True)`` reads."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states captured by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
