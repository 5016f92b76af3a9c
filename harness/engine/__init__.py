"""The training/evaluation engine shared by every model: ``train(spec, run_dir)`` and ``evaluate(model, loader)``.

The trainer loads on first use of ``train`` or ``TIMING_KEYS``: it imports timm and torchvision (seconds), which a
launcher reading run records (``harness.engine.provenance``'s code fingerprint) must not wait for."""

from __future__ import annotations

from typing import Any

from harness.engine.evaluate import evaluate
from harness.engine.spec import TrainSpec

__all__ = ["TrainSpec", "train", "evaluate", "TIMING_KEYS"]


def __getattr__(name: str) -> Any:
    """``train`` and ``TIMING_KEYS``, from the trainer, imported now."""
    if name in ("train", "TIMING_KEYS"):
        from harness.engine import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'harness.engine' has no attribute {name!r}")
