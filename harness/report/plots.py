"""Scatter plots as plain geometry for an SVG template: axes (log or linear), ticks, points, and the
Pareto front (the measured points no other point beats on both accuracy and cost)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

WIDTH, HEIGHT = 460, 300
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 12, 46


@dataclass(frozen=True)
class Point:
    """A point to plot; ``measured`` False marks a paper's claim. ``scatter`` sets the pixel position and
    whether the point is on the Pareto front."""

    x: float
    y: float
    label: str
    measured: bool
    family: str | None = None
    row_id: str | None = None
    px: float = 0.0
    py: float = 0.0
    on_front: bool = False


@dataclass(frozen=True)
class Scatter:
    """A laid-out plot: pixel positions of points, ticks and the Pareto front polyline."""

    title: str
    x_label: str
    y_label: str
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    x_ticks: tuple[tuple[float, str], ...]
    y_ticks: tuple[tuple[float, str], ...]
    points: tuple[Point, ...]
    front: str
    log_x: bool


def pareto_front(points: list[Point]) -> list[Point]:
    """Points with the highest y for their x or less (lower cost, higher accuracy), sorted by x."""
    front, best = [], -math.inf
    for point in sorted(points, key=lambda p: (p.x, -p.y)):
        if point.y > best:
            front.append(point)
            best = point.y
    return front


def _nice_step(span: float, count: int) -> float:
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _linear_ticks(low: float, high: float, count: int = 5) -> tuple[float, float, list[float]]:
    if high <= low:
        low, high = low - 1.0, high + 1.0
    step = _nice_step(high - low, count)
    start, stop = math.floor(low / step) * step, math.ceil(high / step) * step
    ticks = [start + i * step for i in range(int(round((stop - start) / step)) + 1)]
    return start, stop, ticks


def _log_ticks(low: float, high: float) -> tuple[float, float, list[float]]:
    lo, hi = math.floor(math.log10(low)), math.ceil(math.log10(high))
    hi = max(hi, lo + 1)  # a single decade at least (one point, or points on one power of ten)
    multiples = (1, 2, 5) if hi - lo <= 3 else (1,)
    ticks = [m * 10.0 ** e for e in range(lo, hi + 1) for m in multiples if low <= m * 10.0 ** e <= high]
    return 10.0 ** lo, 10.0 ** hi, ticks or [10.0 ** lo, 10.0 ** hi]


def _label(value: float) -> str:
    return f"{value:g}"


def scatter(points: list[Point], title: str, x_label: str, y_label: str, log_x: bool = False) -> Scatter | None:
    """Lay out ``points`` (None when there are none) on a log or linear x axis, as the caller chooses for the
    quantity (one scale per quantity on every plot; a log axis leaves out points at x <= 0); the front is drawn
    through the measured points."""
    if log_x:
        points = [p for p in points if p.x > 0]
    if not points:
        return None
    xs, ys = [p.x for p in points], [p.y for p in points]
    if log_x:
        x_low, x_high, x_ticks = _log_ticks(min(xs), max(xs))
    else:
        x_low, x_high, x_ticks = _linear_ticks(min(0.0, min(xs)), max(xs) * 1.05)
    pad = max((max(ys) - min(ys)) * 0.08, 0.5)
    y_low, y_high, y_ticks = _linear_ticks(max(0.0, min(ys) - pad), min(100.0, max(ys) + pad))
    left, right, top, bottom = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM

    def to_px(x: float) -> float:
        fraction = ((math.log10(x) - math.log10(x_low)) / (math.log10(x_high) - math.log10(x_low)) if log_x
                    else (x - x_low) / (x_high - x_low))
        return round(left + fraction * (right - left), 1)

    def to_py(y: float) -> float:
        return round(bottom - (y - y_low) / (y_high - y_low) * (bottom - top), 1)

    placed = [replace(p, px=to_px(p.x), py=to_py(p.y)) for p in points]
    front = pareto_front([p for p in placed if p.measured])
    placed = [replace(p, on_front=p in front) for p in placed]
    drawing_order = sorted(placed, key=lambda p: p.measured)  # claims first, measured points on top
    return Scatter(title, x_label, y_label, WIDTH, HEIGHT, left, right, top, bottom,
                   tuple((to_px(t), _label(t)) for t in x_ticks), tuple((to_py(t), _label(t)) for t in y_ticks),
                   tuple(drawing_order), " ".join(f"{p.px},{p.py}" for p in front), log_x)
