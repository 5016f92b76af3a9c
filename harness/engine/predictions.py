"""The evaluation's per-image predictions, kept in the run directory so that a re-evaluation can be compared with
them image by image (``harness verify``).

``predictions.npy`` holds the predicted class id of every evaluated image, in the evaluation's order (images
``0..n-1`` of the evaluation set, as its loader yields them), as unsigned integers (``uint16``, or ``uint32``
beyond 65,536 classes): 2 bytes an image, 100 kB for ImageNet's 50,000. ``predictions.json`` describes it:
its dtype, the number of images, the evaluation batch they were evaluated in and the number of processes that
shared the evaluation (a batch-dependent model's prediction depends on its batch), the split, the checkpoint
whose weights gave them (trained runs) and the file's SHA-256, so that a description that does not belong to
the file is detected. Both are written atomically, the array first.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.atomicfile import atomic_write_bytes, atomic_write_text

ARRAY_NAME = "predictions.npy"
META_NAME = "predictions.json"


class PredictionsError(ValueError):
    """A predictions file that cannot be read as what it should be (the message names it)."""


def class_dtype(num_classes: int) -> np.dtype:
    """The smallest unsigned integer type that holds every class id."""
    return np.dtype(np.uint16) if num_classes <= 1 << 16 else np.dtype(np.uint32)


def encode(predictions: torch.Tensor | np.ndarray, num_classes: int) -> bytes:
    """The ``.npy`` bytes of ``predictions`` (class ids) in :func:`class_dtype`."""
    array = np.asarray(predictions.cpu() if isinstance(predictions, torch.Tensor) else predictions)
    if array.ndim != 1 or (array.size and (array.min() < 0 or array.max() >= num_classes)):
        raise ValueError(f"predictions must be class ids in [0, {num_classes}) of shape (n,), got {array.shape}")
    buffer = io.BytesIO()
    np.save(buffer, array.astype(class_dtype(num_classes)), allow_pickle=False)
    return buffer.getvalue()


def interleave(shares: list[torch.Tensor]) -> torch.Tensor:
    """One evaluation's predictions in its order from each rank's share: a multi-process evaluation gives rank ``r``
    images ``r, r + world, r + 2 world...`` (``harness.engine.data.EpochSampler`` in order), so share ``r`` fills
    every ``world``-th place from ``r``."""
    world = len(shares)
    out = torch.empty(sum(len(share) for share in shares), dtype=torch.long)
    for rank, share in enumerate(shares):
        out[rank::world] = share
    return out


def write_predictions(run_dir: Path, predictions: torch.Tensor, num_classes: int, **facts: Any) -> None:
    """Record ``predictions`` (one class id per evaluated image) and their description (``facts``: split,
    eval_batch, checkpoint...) in ``run_dir``, each file atomically."""
    data = encode(predictions, num_classes)
    atomic_write_bytes(data, Path(run_dir) / ARRAY_NAME)
    meta = {"file": ARRAY_NAME, "dtype": str(class_dtype(num_classes)), "images": len(predictions),
            "num_classes": num_classes, "sha256": hashlib.sha256(data).hexdigest(), **facts}
    atomic_write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", Path(run_dir) / META_NAME)


def decode(data: bytes, what: str) -> np.ndarray:
    """The class ids of ``.npy`` bytes: a 1-D unsigned integer array, read without unpickling anything."""
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise PredictionsError(f"{what}: not a .npy array ({str(err).splitlines()[0][:120]})") from None
    if array.ndim != 1 or array.dtype not in (np.uint16, np.uint32):
        raise PredictionsError(f"{what}: expected a 1-D uint16 or uint32 array of class ids, got {array.dtype} "
                               f"of shape {array.shape}")
    return array


def read_predictions(run_dir: Path) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The run's predictions and their description, or None when the run recorded none; a pair that does not
    belong together is refused (PredictionsError naming the file)."""
    array_path, meta_path = Path(run_dir) / ARRAY_NAME, Path(run_dir) / META_NAME
    if not meta_path.is_file() or not array_path.is_file():
        return None
    data = array_path.read_bytes()
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError as err:
        raise PredictionsError(f"{meta_path}: not JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("sha256") != hashlib.sha256(data).hexdigest():
        raise PredictionsError(f"{meta_path}: does not describe {array_path.name} (its sha256 differs)")
    array = decode(data, str(array_path))
    if len(array) != meta.get("images") or str(array.dtype) != meta.get("dtype"):
        raise PredictionsError(f"{meta_path}: says {meta.get('images')} {meta.get('dtype')} ids, "
                               f"{array_path.name} holds {len(array)} {array.dtype}")
    return array, meta
