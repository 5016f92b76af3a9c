"""The training/evaluation engine shared by every model: ``train(spec, run_dir)``, and
``harness.engine.evaluate.evaluate(model, loader)``.

Every name loads on first use: the trainer imports timm and torchvision (seconds) and the others torch, which a
process reading run records (``harness.engine.provenance``'s code fingerprint, a report's stale check) must not
wait for."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["TrainSpec", "train", "TIMING_KEYS"]

_HOMES = {"train": "trainer", "TIMING_KEYS": "trainer", "TrainSpec": "spec"}


def __getattr__(name: str) -> Any:
    """One of ``__all__``, from its module, imported now."""
    if name in _HOMES:
        return getattr(importlib.import_module(f"harness.engine.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'harness.engine' has no attribute {name!r}")
