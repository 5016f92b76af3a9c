"""CIFAR-10/100 in the python pickle format, read with pickle + numpy (no torchvision).

Layout: ``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` and
``cifar-100-python/{train, test, meta}``; each file is a pickled dict written by Python 2, whose keys load as
bytes (``encoding="bytes"``) or str (re-pickled copies): both are accepted.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.catalog import CIFAR_URL
from harness.data.errors import corrupt_file, missing_dataset


@dataclass(frozen=True)
class CifarLayout:
    """File names and keys of one CIFAR variant."""

    folder: str
    files: dict[str, tuple[str, ...]]
    meta: str
    label_key: str
    names_key: str
    num_classes: int


LAYOUTS = {
    "cifar10": CifarLayout(
        "cifar-10-batches-py",
        {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        "batches.meta", "labels", "label_names", 10,
    ),
    "cifar100": CifarLayout("cifar-100-python", {"train": ("train",), "test": ("test",)}, "meta", "fine_labels", "fine_label_names", 100),
}


def _text(value: Any) -> Any:
    """Decode Python-2 byte strings (keys and class names) to str."""
    return value.decode("latin1") if isinstance(value, bytes) else value


def unpickle(name: str, path: Path) -> dict[str, Any]:
    """Load one CIFAR pickle with str keys, whatever the key type it was written with."""
    try:
        with path.open("rb") as f:
            raw = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as err:
        raise corrupt_file(name, path, f"not a readable pickle ({type(err).__name__}: {err})", CIFAR_URL) from None
    if not isinstance(raw, dict):
        raise corrupt_file(name, path, f"expected a pickled dict, got {type(raw).__name__}", CIFAR_URL)
    return {_text(k): v for k, v in raw.items()}


def find_cifar_dir(name: str, root: Path) -> Path:
    """The CIFAR folder: ``root/<folder>`` or ``root`` itself when it is that folder."""
    layout = LAYOUTS[name]
    for candidate in (root / layout.folder, root):
        if candidate.name == layout.folder and candidate.is_dir():
            return candidate
    raise missing_dataset(
        name, root, [f"{root / layout.folder}/ with {', '.join((*layout.files['train'], *layout.files['test'], layout.meta))}"], CIFAR_URL
    )


def read_cifar(name: str, root: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One split as uint8 images ``[N, 32, 32, 3]``, int64 labels and the class names."""
    layout = LAYOUTS[name]
    folder = find_cifar_dir(name, root)
    wanted = (*layout.files[split], layout.meta)
    absent = [f for f in wanted if not (folder / f).is_file()]
    if absent:
        raise missing_dataset(name, folder, [f"{f} (missing)" for f in absent], CIFAR_URL)
    classes = [_text(c) for c in unpickle(name, folder / layout.meta).get(layout.names_key, [])]
    if len(classes) != layout.num_classes:
        raise corrupt_file(name, folder / layout.meta, f"expected {layout.num_classes} names under {layout.names_key!r}, got {len(classes)}", CIFAR_URL)
    images, labels = [], []
    for f in layout.files[split]:
        x, y = _batch(name, folder / f, layout)
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels), classes


def _batch(name: str, path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    """Validate and decode one data file: ``data`` uint8 (N, 3072) RGB planes, labels in range."""
    d = unpickle(name, path)
    if "data" not in d or layout.label_key not in d:
        raise corrupt_file(name, path, f"expected keys 'data' and {layout.label_key!r}, found {sorted(d)}", CIFAR_URL)
    data, labels = np.asarray(d["data"]), np.asarray(d[layout.label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise corrupt_file(name, path, f"'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}", CIFAR_URL)
    if labels.shape != (len(data),):
        raise corrupt_file(name, path, f"{len(data)} images but {labels.size} labels", CIFAR_URL)
    if labels.size and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise corrupt_file(name, path, f"labels outside [0, {layout.num_classes})", CIFAR_URL)
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels

