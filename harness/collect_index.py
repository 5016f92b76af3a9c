"""What ``collect`` already logged, per results directory and tracking store, so that it reads only changed runs.

``<results>/.collect-index-<key>.json`` (one per tracking URI and suite override, written atomically) maps each
run directory to the stamps (mtime, size) of the files its MLflow run is made of, the content hash that
was logged, the experiment and run id it went to and the outcome. A run whose stamps are unchanged and whose
logged MLflow run the store still holds (``confirmed``) is not read again; a new or changed run is read, a deleted
one drops out of the index. An index that is missing, unreadable or of another store is a full scan: the index
only saves reads, the store and the run directories decide.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.atomicfile import atomic_write_text
from harness.bundle.origin import ORIGIN_NAME, VERIFICATION_NAME
from harness.runs import STATUS_NAME

VERSION = 2  # 2: keyed by the run directory relative to the results directory, with its source
# The files a run's MLflow run is made of, in the order its content hash (``harness.tracking.RunContent``) takes
# them: those always hashed (an absent one as "-"), then those hashed only when present (an imported or verified
# run's); and the file of its state, which the hash also covers. ``STAMPED``: all of them, for ``stamp``.
HASHED = ("spec.json", "final.json", "metrics.jsonl", "config.json")
HASHED_IF_PRESENT = (ORIGIN_NAME, VERIFICATION_NAME)
STAMPED = (*HASHED, *HASHED_IF_PRESENT, STATUS_NAME)
LOGGED_OUTCOMES = ("logged", "unchanged", "merged")  # the store holds exactly one complete MLflow run of the run
# (experiment, run id, source label) -> the content hash of each of its active MLflow runs (None: not logged to
# the end); the source label is ``harness.bundle.origin.source_label``'s: a local and an imported copy are apart
Logged = dict[tuple[str, str, str], list[str | None]]


def stamp(directory: Path) -> list[list[int] | None]:
    """(mtime in ns, size) of each of ``STAMPED`` in ``directory`` (None for an absent file): any write changes
    it; a copied or moved results directory keeps it (copies keep mtimes), so its index still holds."""
    stamps: list[list[int] | None] = []
    for name in STAMPED:
        try:
            info = os.stat(directory / name)
        except FileNotFoundError:
            stamps.append(None)
            continue
        stamps.append([info.st_mtime_ns, info.st_size])
    return stamps


def index_path(results_root: Path, uri: str, suite: str | None) -> Path:
    """The index of collecting ``results_root`` into ``uri`` (under the experiment of ``suite``, when given)."""
    key = hashlib.sha256(f"{uri}\0{suite or ''}".encode()).hexdigest()[:16]
    return Path(results_root) / f".collect-index-{key}.json"


@dataclass
class CollectIndex:
    """The index of one results directory and store: run directory (relative to it) -> entry (module docstring)."""

    path: Path
    uri: str
    suite: str | None
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, results_root: Path, uri: str, suite: str | None) -> CollectIndex:
        """The index as saved; empty (a full scan) when there is none, and with one warning when it is corrupt."""
        path = index_path(results_root, uri, suite)
        index = cls(path, uri, suite)
        try:
            content = json.loads(path.read_text())
        except FileNotFoundError:
            return index
        except (OSError, ValueError, UnicodeDecodeError) as err:
            warnings.warn(f"{path}: unreadable collect index ({type(err).__name__}); every run directory is read",
                          stacklevel=2)
            return index
        problem = _index_problem(content, uri, suite)
        if problem:
            warnings.warn(f"{path}: {problem}; every run directory is read", stacklevel=2)
            return index
        index.entries = content["runs"]
        return index

    def settled(self, names: list[str], logged: Logged) -> set[str]:
        """The run directories (of ``names``) not to read again: their files' stamps are those indexed and the
        store holds exactly their one logged MLflow run, complete, with the indexed content hash (or, for a run
        that was not in a final state, nothing needs logging)."""
        quiet = set()
        for name in names:
            entry = self.entries.get(name)
            if entry is None or entry["stamp"] != stamp(self.path.parent / name):
                continue
            if entry["outcome"] == "skipped" or _logged_once(logged, entry):
                quiet.add(name)
        return quiet

    def record(self, name: str, stamps: list, outcome: str, key: tuple[str, str, str], content_hash: str) -> None:
        """Remember a run directory (relative to the results directory) as read: its stamps taken before it was
        read, and what became of it: its MLflow run's ``key`` (experiment, run id, source label) and hash."""
        experiment, run_id, source = key
        self.entries[name] = {"stamp": stamps, "outcome": outcome, "experiment": experiment, "run_id": run_id,
                              "source": source, "hash": content_hash}

    def save(self, present: set[str]) -> None:
        """Write the index atomically, keeping only run directories that still exist (``present``)."""
        runs = {name: entry for name, entry in self.entries.items() if name in present}
        content = {"version": VERSION, "uri": self.uri, "suite": self.suite, "runs": runs}
        atomic_write_text(json.dumps(content, separators=(",", ":")), self.path)


def _logged_once(logged: Logged, entry: dict[str, Any]) -> bool:
    return logged.get((entry["experiment"], entry["run_id"], entry["source"])) == [entry["hash"]]


def _index_problem(content: Any, uri: str, suite: str | None) -> str | None:
    """Why ``content`` is not an index of this store, or None when it is one."""
    if not isinstance(content, dict) or content.get("version") != VERSION:
        return f"not a version-{VERSION} collect index"
    if content.get("uri") != uri or content.get("suite") != suite:
        return "the index of another tracking store"
    runs = content.get("runs")
    if not isinstance(runs, dict):
        return "its runs are not an object"
    keys = {"stamp", "outcome", "experiment", "run_id", "source", "hash"}
    for name, entry in runs.items():
        if not isinstance(entry, dict) or set(entry) != keys or not isinstance(entry["stamp"], list):
            return f"entry {name!r} is not an index entry"
    return None
