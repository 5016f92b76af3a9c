"""What ``status`` needs of each run directory, kept between calls so that unchanged runs are not parsed again.

``<results>/.status-index.json`` maps each run directory (its name under ``runs/``) to the stamps (mtime, size,
inode) of ``status.json``, ``config.json`` and ``final.json`` and what ``status`` takes from them: the status, the
code the run recorded (``harness.runs.recorded_code``) and its top-1. A run whose stamps match is not read; any
write to one of its files (each is replaced atomically) changes them. The index only saves reads: one that is
missing, unreadable, a link or of another version is rebuilt, and one that cannot be written is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.atomicfile import atomic_write_text
from harness.runs import STATUS_NAME, RunRecord, parse_status, read_bytes, recorded_code

VERSION = 1
INDEX_NAME = ".status-index.json"
READ = (STATUS_NAME, "config.json", "final.json")
KEYS = {"stamp", "status", "code", "top1"}


def _stamp(directory: Path) -> list[list[int] | None]:
    stamps: list[list[int] | None] = []
    for name in READ:
        try:
            info = os.stat(directory / name)
        except FileNotFoundError:
            stamps.append(None)
            continue
        stamps.append([info.st_mtime_ns, info.st_size, info.st_ino])
    return stamps


@dataclass
class StatusIndex:
    """The index of one results directory (module docstring)."""

    path: Path
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: bool = False

    @classmethod
    def load(cls, results_root: Path) -> StatusIndex:
        path = Path(results_root) / INDEX_NAME
        index = cls(path)
        if path.is_symlink():
            return index
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError):
            return index
        runs = content.get("runs") if isinstance(content, dict) and content.get("version") == VERSION else None
        if isinstance(runs, dict):
            index.entries = {name: entry for name, entry in runs.items() if _valid(entry)}
        return index

    def facts(self, record: RunRecord) -> dict[str, Any]:
        """The status (``harness.runs.parse_status``), recorded code and top-1 of a run directory: from the index
        when its files are unchanged, else read (and indexed)."""
        from harness.tracking import final_metrics

        stamps = _stamp(record.dir)
        entry = self.entries.get(record.dir.name)
        if entry is not None and entry["stamp"] == stamps:
            return entry
        status = parse_status(read_bytes(record.dir / STATUS_NAME))
        config, final = record.config, record.final or {}
        code = recorded_code(config, final)
        entry = {"stamp": stamps, "status": status, "code": list(code) if code else None,
                 "top1": final_metrics(final).get("top1")}
        self.entries[record.dir.name] = entry
        self.changed = True
        return entry

    def save(self) -> None:
        """Write the index atomically when a run was read; the entries of deleted run directories are dropped."""
        if not self.changed:
            return
        runs = self.path.parent / "runs"
        kept = {name: entry for name, entry in self.entries.items() if (runs / name).is_dir()}
        with contextlib.suppress(OSError):  # a read-only results directory: the next status reads again
            atomic_write_text(json.dumps({"version": VERSION, "runs": kept}, separators=(",", ":")), self.path)


def _valid(entry: Any) -> bool:
    return (isinstance(entry, dict) and set(entry) == KEYS and isinstance(entry["stamp"], list)
            and isinstance(entry["status"], dict) and isinstance(entry["status"].get("state"), str)
            and (entry["code"] is None or (isinstance(entry["code"], list) and len(entry["code"]) == 3))
            and (entry["top1"] is None or isinstance(entry["top1"], (int, float))))
