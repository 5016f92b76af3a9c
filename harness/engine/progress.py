"""Progress of an epoch: a tqdm bar on a terminal (when tqdm is installed), plain log lines otherwise, and
``progress.json`` in the run directory, from which a launcher shows a live progress line per run."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from harness.atomicfile import atomic_write_text


class RunLog:
    """Timestamped lines to ``train.log`` (always) and to stderr (main process only)."""

    def __init__(self, path: Path, echo: bool = True, stream: TextIO = sys.stderr) -> None:
        self.path, self.echo, self.stream = path, echo, stream

    def __call__(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        with open(self.path, "a") as fh:
            fh.write(line + "\n")
        if self.echo:
            print(line, file=self.stream, flush=True)


class EpochProgress:
    """Per-epoch progress with loss, accuracy and img/s; ``progress.json`` beside the log is rewritten (atomically)
    at most every ``write_every_s`` seconds with the epoch, position, stats and batches per second."""

    def __init__(self, log: RunLog, epoch: int, total: int, start: int, enabled: bool, log_every: int = 50,
                 write_every_s: float = 2.0) -> None:
        self.log, self.epoch, self.total, self.log_every = log, epoch, total, log_every
        self.enabled, self.start, self.write_every_s = enabled, start, write_every_s
        self.started = self.written = time.monotonic()
        self.bar = None
        if enabled and log.echo and log.stream.isatty():
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm is optional: fall back to log lines
                return
            self.bar = tqdm(total=total, initial=start, desc=f"epoch {epoch}", file=log.stream, leave=True)

    def update(self, position: int, stats: dict[str, Any]) -> None:
        """Report that micro-batch ``position`` (1-based) of the epoch is done."""
        text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items())
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(position - self.bar.n)
        elif position % self.log_every == 0 or position == self.total:
            self.log(f"epoch {self.epoch} [{position}/{self.total}] {text}")
        now = time.monotonic()
        if self.enabled and (now - self.written >= self.write_every_s or position in (self.start + 1, self.total)):
            self.written = now
            self._write(position, stats, (position - self.start) / max(now - self.started, 1e-9))

    def _write(self, position: int, stats: dict[str, Any], batches_per_s: float) -> None:
        progress = {"epoch": self.epoch, "position": position, "total": self.total, "batches_per_s": batches_per_s,
                    "stats": {k: v for k, v in stats.items() if isinstance(v, (int, float))}, "time": time.time()}
        atomic_write_text(json.dumps(progress), self.log.path.parent / "progress.json")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
