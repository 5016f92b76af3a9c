"""A DVS (dynamic vision sensor) pixel-array emulator for videos shown on a monitor.

Each pixel low-pass filters its log intensity (photoreceptor time constant) and compares it with the level
memorised at its last event: a rise by the pixel's ON threshold emits an ON event (p=1), a fall by its OFF
threshold an OFF event (p=0), and the memorised level moves by one threshold. Thresholds differ from pixel
to pixel (fixed-pattern mismatch, drawn once per sensor), a pixel stays silent for a refractory period after
each event, timestamps are integer microseconds, and optional background-activity noise adds Poisson events
of random polarity. Time runs in steps of at most one refractory period, so a pixel emits at most one event
per step; the event time is interpolated to where the filtered signal crossed the level.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SensorConfig:
    """Pixel array and pixel circuit parameters."""

    height: int = 16
    width: int = 16
    threshold_on: float = 0.2  # log-intensity contrast
    threshold_off: float = 0.2
    threshold_mismatch: float = 0.03  # std of the per-pixel thresholds
    refractory_us: float = 1000.0
    photoreceptor_tau_us: float = 2000.0
    noise_rate_hz: float = 0.1  # background activity per pixel
    dark_level: float = 0.05  # luminance of a black monitor pixel relative to white (keeps log finite)


@dataclass
class EventBatch:
    """Event streams of many samples: sample ``i`` owns ``[offsets[i], offsets[i+1])``, each sorted by time."""

    t: np.ndarray  # int64 microseconds
    x: np.ndarray  # uint16
    y: np.ndarray  # uint16
    p: np.ndarray  # uint8, 1 = ON, 0 = OFF
    offsets: np.ndarray  # int64 [S + 1]

    def sample(self, i: int) -> dict[str, np.ndarray]:
        """The events of sample ``i`` as a dict of arrays ``t, x, y, p``."""
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return {"t": self.t[lo:hi], "x": self.x[lo:hi], "y": self.y[lo:hi], "p": self.p[lo:hi]}


def pixel_thresholds(sensor: SensorConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel ON and OFF thresholds (one draw per sensor: the same camera records every sample)."""
    shape = (sensor.height, sensor.width)
    floor = 0.25 * min(sensor.threshold_on, sensor.threshold_off)
    on = np.maximum(rng.normal(sensor.threshold_on, sensor.threshold_mismatch, shape), floor)
    off = np.maximum(rng.normal(sensor.threshold_off, sensor.threshold_mismatch, shape), floor)
    return on.astype(np.float32), off.astype(np.float32)


def log_luminance(frame: np.ndarray, dark_level: float) -> np.ndarray:
    """Log of the monitor's luminance for pixel values in [0, 1] (black is ``dark_level``, not 0)."""
    return np.log(dark_level + (1.0 - dark_level) * frame).astype(np.float32)


def emulate_dvs(
    render: Callable[[int], np.ndarray],
    n_frames: int,
    n_samples: int,
    frame_period_us: float,
    sensor: SensorConfig,
    rng: np.random.Generator,
) -> EventBatch:
    """Record ``n_samples`` videos at once; ``render(k)`` gives the monitor's frame ``k`` as [S, H, W] luminance in [0, 1]."""
    pixels = sensor.height * sensor.width
    th_on, th_off = (np.tile(th.ravel(), n_samples) for th in pixel_thresholds(sensor, rng))
    steps_per_frame = max(1, math.ceil(frame_period_us / sensor.refractory_us))
    dt = frame_period_us / steps_per_frame
    decay = np.float32(math.exp(-dt / sensor.photoreceptor_tau_us))
    noise = _background_noise(n_samples, n_frames * frame_period_us, sensor, rng)

    # state per pixel of every sample, flattened: filtered log luminance, memorised level, time of last event
    level = log_luminance(render(0), sensor.dark_level).ravel()  # the first picture has been on long enough to settle
    memory = level + rng.uniform(-0.5, 0.5, level.shape).astype(np.float32) * th_on
    last_event = np.full(level.shape, -np.inf)
    chunks: list[tuple[np.ndarray, ...]] = []
    for k in range(n_frames):
        target = log_luminance(render(k), sensor.dark_level).ravel()
        for s in range(steps_per_frame):
            t0 = (k * steps_per_frame + s) * dt
            new = target + (level - target) * decay
            diff = new - memory
            idx = np.flatnonzero((diff >= th_on) | (diff <= -th_off))
            idx = idx[last_event[idx] <= t0 + dt - sensor.refractory_us]
            up = diff[idx] > 0
            step = np.where(up, th_on[idx], -th_off[idx])
            change = new[idx] - level[idx]
            frac = np.clip((memory[idx] + step - level[idx]) / np.where(change == 0, 1.0, change), 0.0, 1.0)
            t_event = np.maximum(t0 + frac * dt, last_event[idx] + sensor.refractory_us)
            memory[idx] += step
            last_event[idx] = t_event
            sample, pixel = np.divmod(idx, pixels)
            y, x = np.divmod(pixel, sensor.width)
            chunks.append(_time_sorted(noise, t0, t0 + dt, _compact(sample, y, x, up, t_event)))
            level = new
    return _assemble(chunks, n_samples)


def _background_noise(n_samples: int, duration_us: float, sensor: SensorConfig, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Poisson background-activity events (uniform in time, pixel and polarity) as (sample, y, x, p, t), sorted by t."""
    mean = sensor.noise_rate_hz * sensor.height * sensor.width * duration_us * 1e-6
    per_sample = rng.poisson(mean, n_samples)
    total = int(per_sample.sum())
    t = rng.uniform(0, duration_us, total)
    order = np.argsort(t)
    events = _compact(
        np.repeat(np.arange(n_samples), per_sample),
        rng.integers(0, sensor.height, total),
        rng.integers(0, sensor.width, total),
        rng.integers(0, 2, total).astype(bool),
        t,
    )
    return tuple(a[order] for a in events)


def _compact(sample: np.ndarray, y: np.ndarray, x: np.ndarray, p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """(sample int32, y uint16, x uint16, p bool, t float64 microseconds): the in-flight event record."""
    return sample.astype(np.int32), y.astype(np.uint16), x.astype(np.uint16), p.astype(bool), t.astype(np.float64)


def _time_sorted(noise: tuple[np.ndarray, ...], t0: float, t1: float, events: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """The events of one time step merged with the noise events of ``[t0, t1)``, sorted by time."""
    lo, hi = np.searchsorted(noise[-1], [t0, t1])
    merged = [np.concatenate([e, n[lo:hi]]) for e, n in zip(events, noise)]
    order = np.argsort(merged[-1], kind="stable")
    return tuple(m[order] for m in merged)


def _assemble(chunks: list[tuple[np.ndarray, ...]], n_samples: int) -> EventBatch:
    """Concatenate the chronological chunks and group them by sample (a stable sort keeps time order)."""
    n, y, x, p, t = (np.concatenate(parts) for parts in zip(*chunks))
    order = np.argsort(n.astype(np.uint16) if n_samples <= 65536 else n, kind="stable")
    offsets = np.zeros(n_samples + 1, dtype=np.int64)
    np.cumsum(np.bincount(n, minlength=n_samples), out=offsets[1:])
    return EventBatch(
        t=np.floor(t[order]).astype(np.int64),
        x=x[order],
        y=y[order],
        p=p[order].astype(np.uint8),
        offsets=offsets,
    )
