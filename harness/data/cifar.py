"""CIFAR-10/100 in the python pickle format, read with a restricted unpickler + numpy (no torchvision).

Layout: ``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` and
``cifar-100-python/{train, test, meta}``; each file is a pickled dict written by Python 2, whose keys load as
bytes (``encoding="bytes"``) or str (re-pickled copies): both are accepted.

A pickle can name any importable callable and call it while loading, so whoever can write into the data folder
could run code here. The unpickler resolves only the numpy array reconstructors the real files (and copies
re-pickled by Python 3 with any protocol) use; every other reference is refused before anything is called.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy._core import multiarray as np_core_multiarray
from numpy._core import numeric as np_core_numeric

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


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes with protocols 0-2: only its latin-1 form is accepted."""
    if not isinstance(text, str) or encoding.replace("-", "").replace("_", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode is only accepted as encode(str, 'latin1'), got encoding {encoding!r}")
    return text.encode("latin1")


# (module, name) -> what a CIFAR file may reference: numpy arrays, dtypes and scalars in the old (numpy.core)
# and new (numpy._core) module names, and the latin-1 bytes encoder of protocol-2 copies made by Python 3
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{(f"numpy.{core}.multiarray", "_reconstruct"): np_core_multiarray._reconstruct for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): np_core_multiarray.scalar for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): np_core_numeric._frombuffer for core in ("core", "_core")},
    ("_codecs", "encode"): _latin1_encode,
}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, tuples, str, bytes, numbers and numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"it references {module}.{name}, which a CIFAR file never holds "
                                         "(only dicts, lists, str, bytes, numbers and numpy arrays are read)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("it holds a persistent reference, which a CIFAR file never holds")


def unpickle(name: str, path: Path) -> dict[str, Any]:
    """Load one CIFAR pickle with str keys, whatever the key type it was written with; nothing but data loads."""
    try:
        with path.open("rb") as f:
            raw = _CifarUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as err:
        raise corrupt_file(name, path, f"refused: {err}", CIFAR_URL) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as err:
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


def cifar_split_folder(name: str, root: Path, split: str) -> Path:
    """The CIFAR folder once it holds every file of ``split`` (and the meta file); ``DatasetError`` otherwise."""
    layout = LAYOUTS[name]
    folder = find_cifar_dir(name, root)
    wanted = (*layout.files[split], layout.meta)
    absent = [f for f in wanted if not (folder / f).is_file()]
    if absent:
        raise missing_dataset(name, folder, [f"{f} (missing)" for f in absent], CIFAR_URL)
    return folder


def read_cifar(name: str, root: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One split as uint8 images ``[N, 32, 32, 3]``, int64 labels and the class names."""
    layout = LAYOUTS[name]
    folder = cifar_split_folder(name, root, split)
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

