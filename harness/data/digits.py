"""scikit-learn's 1797 bundled real handwritten digits (8x8, 0..16), upsampled, with a fixed stratified split."""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

TEST_FRACTION = 0.2
SPLIT_SEED = 0
# sizes of the fixed split: 1438 train / 359 test (per class: round(0.2 * class count) go to test)


@lru_cache(maxsize=1)
def load_digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as float32 [N, 8, 8] in [0, 1] and int64 labels [N]: read from the file scikit-learn ships
    as ``load_digits`` reads it, without importing scikit-learn (it pulls in scipy and pandas: seconds per
    worker); with scikit-learn's own loader when the file is not where this version keeps it."""
    path = bundled_digits_file()
    if path is None:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, labels = bunch.images, bunch.target
    else:
        with gzip.open(path, "rt", encoding="utf-8") as rows:
            table = np.loadtxt(rows, delimiter=",")
        images, labels = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    return (images / 16.0).astype(np.float32), labels.astype(np.int64)


def bundled_digits_file() -> Path | None:
    """scikit-learn's ``datasets/data/digits.csv.gz`` (64 pixel columns, then the label), found without importing
    scikit-learn; None when it is not there."""
    spec = find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    return path if path.is_file() else None


def stratified_split(labels: np.ndarray, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Indices of a per-class random split: round(test_fraction * n_c) of each class go to test."""
    rng = np.random.default_rng(seed)
    test: list[np.ndarray] = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        test.append(members[: round(len(members) * test_fraction)])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return {"train": train_idx, "test": test_idx}


def upsample(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of float [N, h, w] images to [N, size, size] (values stay in [0, 1])."""
    t = torch.from_numpy(images)[:, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[:, 0].clamp(0, 1).numpy()


def digits_split(split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One split as uint8 RGB images [N, size, size, 3] and int64 labels (the three channels are equal)."""
    images, labels = load_digits_raw()
    idx = stratified_split(labels)[split]
    gray = np.rint(upsample(images[idx], size) * 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1), labels[idx]
