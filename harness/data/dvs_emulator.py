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


def emulate_dvs(
    render: Callable[[int], np.ndarray],
    n_frames: int,
    n_samples: int,
    frame_period_us: float,
    sensor: SensorConfig,
    rng: np.random.Generator,
) -> EventBatch:
    """Record ``n_samples`` videos at once; ``render(k)`` gives the monitor's frame ``k`` as [S, H, W] luminance in [0, 1]."""
    th_on, th_off = pixel_thresholds(sensor, rng)
    log_lum = lambda frame: np.log(sensor.dark_level + (1.0 - sensor.dark_level) * frame).astype(np.float32)  # noqa: E731
    steps_per_frame = max(1, math.ceil(frame_period_us / sensor.refractory_us))
    dt = frame_period_us / steps_per_frame
    decay = np.float32(math.exp(-dt / sensor.photoreceptor_tau_us))

    level = log_lum(render(0))  # the first picture has been on screen long enough to settle
    memory = level + rng.uniform(-0.5, 0.5, level.shape).astype(np.float32) * th_on
    last_event = np.full(level.shape, -np.inf, dtype=np.float64)
    chunks: list[tuple[np.ndarray, ...]] = []
    for k in range(n_frames):
        target = log_lum(render(k))
        for s in range(steps_per_frame):
            t0 = (k * steps_per_frame + s) * dt
            new = target + (level - target) * decay
            ready = (t0 + dt - last_event) >= sensor.refractory_us
            up = ready & (new - memory >= th_on)
            down = ready & (memory - new >= th_off)
            fire = up | down
            if fire.any():
                n, yy, xx = np.nonzero(fire)
                crossing = np.where(up, memory + th_on, memory - th_off)[fire]
                change = (new - level)[fire]
                safe_change = np.where(change == 0, 1.0, change)
                frac = np.clip((crossing - level[fire]) / safe_change, 0.0, 1.0)
                t_event = np.maximum(t0 + frac * dt, last_event[fire] + sensor.refractory_us)
                chunks.append((n, yy, xx, up[fire], t_event))
                memory = memory + np.where(up, th_on, 0) - np.where(down, th_off, 0)
                last_event[fire] = t_event
            level = new
    duration_us = n_frames * frame_period_us
    chunks.append(_background_noise(n_samples, duration_us, sensor, rng))
    return _assemble(chunks, n_samples)


def _background_noise(n_samples: int, duration_us: float, sensor: SensorConfig, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Poisson background-activity events (uniform in time, pixel and polarity)."""
    mean = sensor.noise_rate_hz * sensor.height * sensor.width * duration_us * 1e-6
    per_sample = rng.poisson(mean, n_samples)
    total = int(per_sample.sum())
    return (
        np.repeat(np.arange(n_samples), per_sample),
        rng.integers(0, sensor.height, total),
        rng.integers(0, sensor.width, total),
        rng.integers(0, 2, total).astype(bool),
        rng.uniform(0, duration_us, total),
    )


def _assemble(chunks: list[tuple[np.ndarray, ...]], n_samples: int) -> EventBatch:
    """Concatenate event chunks and sort them by (sample, time)."""
    n, y, x, p, t = (np.concatenate(parts) for parts in zip(*chunks))
    t_us = np.floor(t).astype(np.int64)
    order = np.lexsort((t_us, n))
    offsets = np.zeros(n_samples + 1, dtype=np.int64)
    np.cumsum(np.bincount(n, minlength=n_samples), out=offsets[1:])
    return EventBatch(
        t=t_us[order],
        x=x[order].astype(np.uint16),
        y=y[order].astype(np.uint16),
        p=p[order].astype(np.uint8),
        offsets=offsets,
    )
