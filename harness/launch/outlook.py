"""What a local suite run is about to do and how long it has left, as the terminal shows them: the plan line
(runs to train, already done, trained elsewhere) printed before anything is built, and the suite-wide ETA of
the progress lines.

The ETA is measured, not predicted: each running run's own training ETA (from its ``progress.json``), and for
the runs still queued, the seconds per unit of expected cost (``harness.launch.cost``, when the launcher
computed the costs) or per run (otherwise) that the runs of this suite have shown so far. Before a run has
reported its speed there is no ETA: FLOPs alone do not say how many seconds a step takes on this machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.runs import DONE_STATES, RunRecord, lock_holder, read_json, run_dir
from harness.suite import RunSpec


def plan_line(name: str, specs: list[RunSpec], root: Path, jobs: int, keep_stale: bool = False) -> str:
    """One line: how many runs the suite has, how many will train now, how many are done or trained elsewhere
    (read from the run directories alone: nothing is built or imported for it)."""
    done = elsewhere = stale = 0
    for spec in specs:
        directory = run_dir(root, spec)
        record = RunRecord(directory)
        if lock_holder(directory):
            elsewhere += 1
        elif not keep_stale and (directory / "spec.json").exists() and record.stale:
            stale += 1
        elif record.state in DONE_STATES:
            done += 1
    train = len(specs) - done - elsewhere
    parts = [f"{train} to train" + (f" ({stale} stale, recomputed)" if stale else ""), f"{done} already done"]
    if elsewhere:
        parts.append(f"{elsewhere} trained by another process")
    at_once = f", {min(jobs, train)} at a time" if train else ""
    return f"{name}: {len(specs)} run{'s' if len(specs) != 1 else ''}: {', '.join(parts)}{at_once}"


def training_left_s(directory: Path) -> float | None:
    """Seconds of training a running run has left at the speed it reports (None before its first report)."""
    progress = read_json(directory / "progress.json")
    resolved = RunRecord(directory).config.get("resolved", {})
    epochs, per_epoch = resolved.get("total_epochs"), resolved.get("batches_per_epoch")
    if not progress or not progress.get("batches_per_s") or not epochs or not per_epoch:
        return None
    left = (epochs - progress["epoch"]) * per_epoch - progress["position"]
    return max(left, 0) / progress["batches_per_s"]


@dataclass
class SuiteClock:
    """The suite-wide ETA: runs' start and end times, their expected costs (run id -> cost; empty when not
    computed) and the number of workers."""

    jobs: int
    costs: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)  # run id -> monotonic start time
    took: dict[str, float] = field(default_factory=dict)  # finished run id -> seconds

    def start(self, run_id: str) -> None:
        self.started[run_id] = time.monotonic()

    def finish(self, run_id: str) -> None:
        self.took[run_id] = time.monotonic() - self.started.pop(run_id, time.monotonic())

    def _weight(self, run_id: str) -> float:
        """A run's share of the work: its expected cost when every run has a finite one, else 1."""
        costs = self.costs.values()
        usable = self.costs and all(0 < c < float("inf") for c in costs)
        return self.costs.get(run_id, 1.0) if usable else 1.0

    def eta_s(self, running: dict[str, Path], queued: list[str]) -> float | None:
        """Seconds until the suite's last run ends, or None while no run has shown its speed."""
        now = time.monotonic()
        left = {run_id: training_left_s(directory) for run_id, directory in running.items()}
        seen = dict(self.took)  # run id -> total seconds, finished or projected
        seen.update({run_id: now - self.started.get(run_id, now) + s for run_id, s in left.items() if s is not None})
        if not seen:
            return None
        per_weight = sum(seen.values()) / sum(self._weight(run_id) for run_id in seen)
        running_left = [s if s is not None else max(per_weight * self._weight(run_id)
                                                    - (now - self.started.get(run_id, now)), 0.0)
                        for run_id, s in left.items()]
        work = sum(running_left) + sum(per_weight * self._weight(run_id) for run_id in queued)
        return max(work / max(self.jobs, 1), max(running_left, default=0.0))

    def line(self, total: int, running: dict[str, Path], queued: list[str]) -> str:
        """``suite: D/N done, R running, Q queued, eta ~T`` (no eta before a run has shown its speed)."""
        eta = self.eta_s(running, queued)
        text = f"suite: {total - len(running) - len(queued)}/{total} done, {len(running)} running, {len(queued)} queued"
        return text + (f", eta ~{duration(eta)}" if eta is not None else "")


def duration(seconds: float) -> str:
    """``1h05m`` or ``4m07s``."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
