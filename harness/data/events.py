"""Event streams and spikingjelly's ``split_by='number'`` framing, in numpy.

An event stream is four equal-length arrays ``t, x, y, p`` in recording order. Framing into ``T`` frames
gives float32 ``[T, 2, H, W]`` event counts: frame ``i`` holds events ``[i*d, (i+1)*d)`` with
``d = n // T`` (the last frame also takes the remainder; with fewer than ``T`` events every event lands in
the last frame), channel 0 = polarity 0 (OFF), channel 1 = any other polarity (ON). This is spikingjelly's
``integrate_events_by_fixed_frames_number(..., split_by='number')``.
"""

from __future__ import annotations

import numpy as np


def frame_offsets_by_number(
    x: np.ndarray, y: np.ndarray, p: np.ndarray, offsets: np.ndarray, T: int, H: int, W: int, dtype: type = np.float32
) -> np.ndarray:
    """Frame many streams at once (sample ``i`` owns events ``offsets[i]:offsets[i+1]``): ``[S, T, 2, H, W]`` counts."""
    if T < 1:
        raise ValueError(f"T (frames per sample) must be >= 1, got {T}")
    n_samples = len(offsets) - 1
    counts = np.diff(offsets)
    sample = np.repeat(np.arange(n_samples), counts)
    index_in_sample = np.arange(len(sample)) - np.repeat(offsets[:-1], counts)
    step = np.repeat(counts // T, counts)
    frame = np.where(step > 0, np.minimum(index_in_sample // np.maximum(step, 1), T - 1), T - 1)
    xi, yi = x.astype(np.int64), y.astype(np.int64)
    if len(xi) and (xi.min() < 0 or xi.max() >= W or yi.min() < 0 or yi.max() >= H):
        raise ValueError(f"event coordinates outside the {W}x{H} sensor (x in [{xi.min()}, {xi.max()}], y in [{yi.min()}, {yi.max()}])")
    flat = (((sample * T + frame) * 2 + (p != 0)) * H + yi) * W + xi
    total = n_samples * T * 2 * H * W
    return np.bincount(flat, minlength=total).astype(dtype).reshape(n_samples, T, 2, H, W)


def frame_some_by_number(
    x: np.ndarray, y: np.ndarray, p: np.ndarray, offsets: np.ndarray, samples: np.ndarray, T: int, H: int, W: int,
    dtype: type = np.float32,
) -> np.ndarray:
    """``frame_offsets_by_number(...)[samples]``, framing only those streams: ``[len(samples), T, 2, H, W]``."""
    counts = np.diff(offsets)[samples]
    kept = np.concatenate([[0], np.cumsum(counts)])
    take = np.repeat(offsets[samples] - kept[:-1], counts) + np.arange(kept[-1])
    return frame_offsets_by_number(x[take], y[take], p[take], kept, T, H, W, dtype)


def frames_by_number(x: np.ndarray, y: np.ndarray, p: np.ndarray, T: int, H: int, W: int) -> np.ndarray:
    """Frame one stream into float32 ``[T, 2, H, W]`` counts (spikingjelly's split_by='number')."""
    return frame_offsets_by_number(x, y, p, np.array([0, len(x)]), T, H, W)[0]
