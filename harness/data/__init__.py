"""Datasets, input pipelines and batch mixing for spikebench.

``build_dataset(name, split, root=None, T=None, recipe=None, **options)`` serves every dataset name listed by
``list_datasets()``; ``check_dataset(name, root)`` says whether its files are there without reading them;
``dataset_info(name)`` describes one; ``mixup_fn(recipe, num_classes, label_smoothing)``
builds timm's Mixup for the engine, ``update_mixup_for_epoch`` applies the recipe's switch-off epoch.
The catalogue imports nothing heavy; torch/timm load on first use of the other names (keeps ``ls`` fast).
"""

from __future__ import annotations

import importlib
from typing import Any

from harness.data.catalog import dataset_info, list_datasets, model_input_shape
from harness.data.errors import DatasetError

_LAZY = {
    "build_dataset": "harness.data.build",
    "check_dataset": "harness.data.build",
    "dataset_options": "harness.data.build",
    "mixup_fn": "harness.data.mixup",
    "update_mixup_for_epoch": "harness.data.mixup",
}

__all__ = ["DatasetError", "build_dataset", "check_dataset", "dataset_info", "dataset_options", "list_datasets",
           "model_input_shape", "mixup_fn", "update_mixup_for_epoch"]


def __getattr__(name: str) -> Any:
    """Import the heavy parts (torch, timm, torchvision) only when they are used."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'harness.data' has no attribute {name!r}")
