"""Run directories: ``<results>/runs/<run_id>/`` holds everything one run produced, written atomically.

``spec.json`` (the RunSpec) and ``status.json`` are written here; the engine adds ``config.json``,
``metrics.jsonl``, ``final.json``, ``checkpoints/`` and ``train.log``.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from harness.engine.checkpoint import atomic_write_text
from harness.names import check_name, check_tree, contained
from harness.suite import RunSpec

STATES = ("pending", "running", "finished", "failed", "diverged", "interrupted")
DONE_STATES = ("finished", "diverged")  # a run in these states is never run again


def results_root(path: str | Path | None = None) -> Path:
    """The results directory: the argument, else ``$SPIKEBENCH_RESULTS``, else ``./results``."""
    return Path(path or os.environ.get("SPIKEBENCH_RESULTS", "results")).resolve()


def run_dir(root: Path, spec: RunSpec) -> Path:
    """``<root>/runs/<run_id>``; a run id that is not a plain name is refused (UnsafePathError)."""
    return root / "runs" / check_name(spec.run_id, "run id")


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", path)


def write_status(directory: Path, state: str, reason: str | None = None, **extra: Any) -> None:
    """Record a run's state atomically, with who wrote it and when."""
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}; expected one of {STATES}")
    previous = read_json(directory / "status.json") or {}
    status = {**previous, **extra, "state": state, "reason": reason, "host": socket.gethostname(),
              "pid": os.getpid(), "updated": time.time()}
    write_json(directory / "status.json", status)


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it does not exist yet."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file appended one whole line per write ([] when absent): a last line without
    its newline (torn) is ignored, any other line that is not a JSON object is skipped with one warning."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    complete = lines[:-1]  # the last element is "" after a final newline, else a torn line
    rows = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            warnings.warn(f"{path}: line {number} is not a JSON object; skipped", stacklevel=2)
    return rows


def tail_lines(path: str | Path | None, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ("" when there is no such file yet)."""
    if not path:
        return ""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def prepare(root: Path, spec: RunSpec) -> Path:
    """Create the run directory with its spec (idempotent) and return it. The directory, and everything already
    in it, must resolve inside ``root``: a planted symlink cannot send the run's writes elsewhere."""
    directory = run_dir(root, spec)
    contained(root, directory)
    directory.mkdir(parents=True, exist_ok=True)
    check_tree(root, directory)
    if not (directory / "spec.json").exists():
        write_json(directory / "spec.json", spec.model_dump(mode="json"))
    if not (directory / "status.json").exists():
        write_status(directory, "pending")
    return directory


def _pid_alive(pid: int) -> bool:
    """Whether a local process runs (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True


class RunRecord:
    """Read-only view of one run directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    @property
    def spec(self) -> RunSpec:
        return RunSpec.model_validate(read_json(self.dir / "spec.json"))

    @property
    def status(self) -> dict[str, Any]:
        return read_json(self.dir / "status.json") or {"state": "pending"}

    @property
    def state(self) -> str:
        """The recorded state; a 'running' run whose local process is gone reads as 'interrupted'."""
        status = self.status
        state = status.get("state", "pending")
        if (state == "running" and status.get("host") == socket.gethostname()
                and not status.get("slurm_job_id") and not _pid_alive(int(status.get("pid", 0)))):
            return "interrupted"
        return state

    @property
    def config(self) -> dict[str, Any]:
        """The engine's resolved ``config.json`` (empty until the engine wrote it)."""
        return read_json(self.dir / "config.json") or {}

    @property
    def final(self) -> dict[str, Any] | None:
        return read_json(self.dir / "final.json")

    @property
    def epochs(self) -> list[dict[str, Any]]:
        """The epoch records of ``metrics.jsonl``. A last line without its newline is being written (or was
        torn by a crash) and is ignored; any other malformed line is skipped with a warning naming it."""
        return read_jsonl(self.dir / "metrics.jsonl")


def all_records(root: Path) -> list[RunRecord]:
    """Every run directory under ``root/runs`` that has a spec."""
    return [RunRecord(p.parent) for p in sorted((root / "runs").glob("*/spec.json"))]
