"""scikit-learn's 1797 bundled real handwritten digits (8x8, 0..16), upsampled, with a fixed stratified split."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

TEST_FRACTION = 0.2
SPLIT_SEED = 0
# sizes of the fixed split: 1438 train / 359 test (per class: round(0.2 * class count) go to test)


@lru_cache(maxsize=1)
def load_digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as float32 [N, 8, 8] in [0, 1] and int64 labels [N]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int64)


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
