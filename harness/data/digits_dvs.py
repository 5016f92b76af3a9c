"""``digits_dvs``: sklearn's digits recorded by the emulated DVS the way CIFAR10-DVS was recorded.

Each digit is upsampled to ``picture_px`` and shown on a 60 Hz monitor in front of the sensor; the picture
moves along a repeated closed square loop (``loops`` times round, ``loop_frames`` refreshes per loop, sub-pixel
positions) while the emulator records events. Generation is deterministic from ``seed`` and cached on disk
(``$SPIKEBENCH_DATA`` or ``~/.cache/spikebench``); samples are framed like the real DVS data
(split by number) and use the same stratified split as ``digits``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from harness.data.catalog import default_data_dir
from harness.data.digits import load_digits_raw, upsample
from harness.data.dvs_emulator import EventBatch, SensorConfig, emulate_dvs

FORMAT_VERSION = 2  # bump whenever the emulator or its random draws change


@dataclass(frozen=True)
class DigitsDVSConfig:
    """Everything that determines the generated event streams."""

    sensor: SensorConfig = field(default_factory=SensorConfig)
    picture_px: int = 12
    amplitude_px: float = 2.0  # side of the square loop the picture's centre travels
    refresh_hz: float = 60.0
    loop_frames: int = 12
    loops: int = 2
    seed: int = 0

    def key(self) -> str:
        """A short content hash naming the cache file."""
        blob = json.dumps({"version": FORMAT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def loop_offsets(cfg: DigitsDVSConfig) -> np.ndarray:
    """(dy, dx) of the picture at each monitor refresh: a square loop of side ``amplitude_px``, repeated."""
    half = cfg.amplitude_px / 2
    corners = np.array([(-half, -half), (-half, half), (half, half), (half, -half), (-half, -half)])
    phase = (np.arange(cfg.loop_frames * cfg.loops) % cfg.loop_frames) / cfg.loop_frames * 4
    side = np.floor(phase).astype(int)
    frac = (phase - side)[:, None]
    return corners[side] * (1 - frac) + corners[side + 1] * frac


def generate(cfg: DigitsDVSConfig) -> tuple[EventBatch, np.ndarray]:
    """Record all 1797 digits; returns the events and the labels (scipy is imported here: a cached recording,
    what every run after the first reads, does not need it)."""
    from scipy import ndimage

    images, labels = load_digits_raw()
    s = cfg.sensor
    if cfg.picture_px + cfg.amplitude_px > min(s.height, s.width):
        raise ValueError(f"picture_px {cfg.picture_px} + amplitude_px {cfg.amplitude_px} must fit the {s.height}x{s.width} sensor")
    canvas = np.zeros((len(images), s.height, s.width), dtype=np.float32)
    top, left = (s.height - cfg.picture_px) // 2, (s.width - cfg.picture_px) // 2
    canvas[:, top : top + cfg.picture_px, left : left + cfg.picture_px] = upsample(images, cfg.picture_px)
    offsets = loop_offsets(cfg)

    def render(k: int) -> np.ndarray:
        return ndimage.shift(canvas, (0.0, *offsets[k]), order=1, mode="constant", cval=0.0)

    rng = np.random.default_rng(cfg.seed)
    events = emulate_dvs(render, len(offsets), len(images), 1e6 / cfg.refresh_hz, s, rng)
    return events, labels


def load_or_generate(cfg: DigitsDVSConfig, cache_dir: Path | None = None) -> tuple[EventBatch, np.ndarray]:
    """The cached events for ``cfg``, generating (and atomically caching) them on first use."""
    path = (cache_dir or default_data_dir()) / "digits_dvs" / f"{cfg.key()}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                batch = EventBatch(
                    t=f["t"].astype(np.int64), x=f["x"].astype(np.uint16), y=f["y"].astype(np.uint16), p=f["p"], offsets=f["offsets"]
                )
                return batch, f["labels"]
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)  # a damaged cache entry is regenerated
    events, labels = generate(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    compact = {k: getattr(events, k).astype(np.min_scalar_type(getattr(events, k).max(initial=0))) for k in ("t", "x", "y", "p")}
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp.npz", delete=False) as tmp:
        try:
            np.savez(tmp, offsets=events.offsets, labels=labels, **compact)
        except BaseException:
            Path(tmp.name).unlink()
            raise
    os.replace(tmp.name, path)
    return events, labels
