"""Run directories: ``<results>/runs/<run_id>/`` holds everything one run produced, written atomically.

``spec.json`` (the RunSpec) and ``status.json`` are written here, and ``run.lock``, locked by the one process
that trains the run; the engine adds ``config.json``, ``metrics.jsonl``, ``final.json``, ``checkpoints/``,
``train.log`` and ``progress.json``. Runs computed by other code are moved to ``<results>/stale/``. A
``status.json`` that cannot be read as a status reads as state ``corrupt`` (with why) and is moved aside, never
deleted, when the run's status is next written.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from harness.atomicfile import atomic_write_text
from harness.names import check_name, check_tree, contained
from harness.suite import RunSpec, code_stamps

STATES = ("pending", "running", "finished", "failed", "diverged", "interrupted")
DONE_STATES = ("finished", "diverged")  # a run in these states is never run again
CORRUPT = "corrupt"  # read, never written: status.json is not a status
STATUS_NAME = "status.json"
# Errors of the storage, not of a run: every other run writing there would meet them too.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def results_root(path: str | Path | None = None) -> Path:
    """The results directory: the argument, else ``$SPIKEBENCH_RESULTS``, else ``./results``."""
    return Path(path or os.environ.get("SPIKEBENCH_RESULTS", "results")).resolve()


def run_dir(root: Path, spec: RunSpec) -> Path:
    """``<root>/runs/<run_id>``; a run id that is not a plain name is refused (UnsafePathError)."""
    return root / "runs" / check_name(spec.run_id, "run id")


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", path)


def write_status(directory: Path, state: str, reason: str | None = None, **extra: Any) -> None:
    """Record a run's state atomically, with who wrote it and when (a corrupt status is moved aside first)."""
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}; expected one of {STATES}")
    previous = RunRecord(directory).status
    if previous["state"] == CORRUPT:
        set_aside_corrupt_status(directory)
        previous = {}
    status = {**previous, **extra, "state": state, "reason": reason, "host": socket.gethostname(),
              "pid": os.getpid(), "updated": time.time()}
    write_json(directory / "status.json", status)


def status_problem(status: Any) -> str | None:
    """Why ``status`` (parsed ``status.json``) is not a run status, or None when it is one."""
    if not isinstance(status, dict):
        return f"expected a JSON object, found {type(status).__name__}"
    if status.get("state") not in STATES:
        return f"state {status.get('state')!r} is not one of {', '.join(STATES)}"
    expected = {"reason": str, "error": str, "pid": int, "host": str, "updated": (int, float)}
    for key, kind in expected.items():
        value = status.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            return f"{key} is {type(value).__name__}, expected {getattr(kind, '__name__', 'a number')}"
    return None


def set_aside_corrupt_status(directory: Path) -> Path | None:
    """Move a corrupt ``status.json`` to ``status.json.corrupt-<time>-<pid>`` (kept for inspection, never deleted);
    returns where it went, or None when the status was not corrupt."""
    if RunRecord(directory).status["state"] != CORRUPT:
        return None
    target = directory / f"status.json.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    os.replace(directory / "status.json", target)
    return target


def describe_os_error(err: OSError) -> str:
    """One line for a failed filesystem operation: what went wrong, on which path, and the errno's name, e.g.
    ``no space left on device writing results/runs/x/status.json (ENOSPC)``."""
    what = (err.strerror or str(err)).lower()
    verb = "writing" if err.errno in STORAGE_ERRNOS else "at"
    path = f" {verb} {display_path(err.filename)}" if err.filename else ""
    code = f" ({errno.errorcode[err.errno]})" if err.errno in errno.errorcode else ""
    return f"{what}{path}{code}"


def display_path(path: str | os.PathLike) -> str:
    """``path`` relative to the working directory when it lies under it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it does not exist yet."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def read_bytes(path: Path) -> bytes | None:
    """A file's bytes, or None when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def parse_status(raw: bytes | None) -> dict[str, Any]:
    """A ``status.json``'s bytes as a run status: state 'pending' when there is no file yet; one that is not a status
    reads as state 'corrupt' with the reason why."""
    if raw is None:
        return {"state": "pending"}
    try:
        status = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        return {"state": CORRUPT, "reason": f"{STATUS_NAME} is not valid JSON ({err})"}
    problem = status_problem(status)
    return {"state": CORRUPT, "reason": f"{STATUS_NAME}: {problem}"} if problem else status


def live_state(status: dict[str, Any], directory: Path) -> str:
    """The state a run's ``status`` records; a 'running' run whose lock no live process holds reads as
    'interrupted'."""
    state = status.get("state", "pending")
    if state == "running" and lock_holder(directory) is None:
        return "interrupted"
    return state


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file appended one whole line per write ([] when absent): ``parse_jsonl``."""
    return parse_jsonl(read_bytes(path), path)


def parse_jsonl(raw: bytes | None, path: Path) -> list[dict[str, Any]]:
    """The JSON objects of the JSON-lines file ``path`` whose bytes are ``raw`` (None: absent, no rows): a last line
    without its newline (torn) is ignored, any other line that is not a JSON object is skipped with one warning."""
    if raw is None:
        return []
    text = raw.decode("utf-8", errors="replace")
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


LOCK_NAME = "run.lock"


class RunLock:
    """The one-writer lock of a run directory: an exclusive ``flock`` on ``run.lock``, held by the process that
    trains. The kernel releases it when that process dies, however it dies, so a held lock means a live writer."""

    def __init__(self, directory: Path, fd: int) -> None:
        self.dir, self._fd = directory, fd

    @classmethod
    def acquire(cls, directory: Path, patience_s: float = 1.0) -> RunLock | None:
        """Take the lock, or None when another live process holds it. Retries for ``patience_s`` because
        ``lock_holder`` probes by taking the lock for an instant."""
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + patience_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{socket.gethostname()} {os.getpid()}\n".encode(), 0)
        return cls(directory, fd)

    def release(self) -> None:
        os.close(self._fd)  # closing the only descriptor drops the lock


def lock_holder(directory: Path) -> str | None:
    """``host/pid`` of the live process that holds the run's lock, or None when no process holds it."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: probes never block each other
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").split()
        return "/".join(holder) if holder else "another process"
    finally:
        os.close(fd)
    return None


FINGERPRINTS = "code-fingerprints"  # the user cache entry (``harness.usercache``) of ``checkout_fingerprint``


@functools.lru_cache(maxsize=None)
def checkout_fingerprint(model: str, recipe: str | None, teacher: str | None) -> str:
    """``code_fingerprint`` of this checkout, computed once per process for each (model, recipe, teacher) and kept
    across processes in the user cache under ``harness.suite.code_stamps`` (a superset of what a fingerprint reads):
    every run of a configuration shares it, tracing the imports costs ~0.1 s a call (a 10,000-run ``status`` has
    50-70 configurations' worth of them) and importing the engine to do it seconds."""
    from harness.usercache import store

    known = _stored_fingerprints()
    name = json.dumps([model, recipe, teacher])
    if name not in known:
        from harness.engine.provenance import code_fingerprint

        known[name] = code_fingerprint(model, recipe, teacher)
        store(FINGERPRINTS, code_stamps(), known)
    return known[name]


@functools.lru_cache(maxsize=1)
def _stored_fingerprints() -> dict[str, str]:
    """The fingerprints the user cache holds for this checkout's code as it is now (``code_stamps``)."""
    from harness.usercache import lookup

    def valid(value: Any) -> bool:
        return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())

    return dict(lookup(FINGERPRINTS, code_stamps(), valid) or {})


def recorded_code(config: dict[str, Any], final: dict[str, Any] | None) -> tuple[Any, Any, str | None] | None:
    """What a run with this ``config.json`` and ``final.json`` recorded of its code: the fingerprint it began and
    ended with (``harness.engine.provenance``) and its distillation teacher; None for a run that never started."""
    if not config:
        return None
    from harness.engine.provenance import run_code

    begun = config.get("provenance", {}).get("code_fingerprint")
    return begun, (final or {}).get("code_fingerprint", begun), run_code("", None, config.get("recipe"))[2]


def stale_code(recorded: tuple[Any, Any, str | None] | list | None, model: str, recipe: str) -> bool:
    """Whether a run of ``model`` and ``recipe`` that recorded this code (``recorded_code``) was begun or finished
    by code other than this checkout's; a run that never started is not stale, one without a fingerprint is."""
    if recorded is None:
        return False
    begun, ended, teacher = recorded
    return {begun, ended} != {checkout_fingerprint(model, recipe if isinstance(recipe, str) else None, teacher)}


def is_stale(config: dict[str, Any], final: dict[str, Any] | None, model: str, recipe: str) -> bool:
    """Whether a run with this ``config.json`` and ``final.json`` is stale (``stale_code``)."""
    return stale_code(recorded_code(config, final), model, recipe)


class RunRecord:
    """Read-only view of one run directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    @property
    def spec(self) -> RunSpec:
        return RunSpec.model_validate(read_json(self.dir / "spec.json"))

    @property
    def status(self) -> dict[str, Any]:
        """``status.json`` (``parse_status``)."""
        return parse_status(read_bytes(self.dir / STATUS_NAME))

    @property
    def state(self) -> str:
        """The recorded state (``live_state``)."""
        return live_state(self.status, self.dir)

    @property
    def config(self) -> dict[str, Any]:
        """The engine's resolved ``config.json`` (empty until the engine wrote it)."""
        return read_json(self.dir / "config.json") or {}

    @property
    def stale(self) -> bool:
        """Whether the run was begun or finished by code other than this checkout's (``is_stale``)."""
        config = self.config
        if not config:
            return False
        model, recipe = self._model_and_recipe()
        return is_stale(config, self.final, model, recipe)

    @property
    def checkout_fingerprint(self) -> str:
        """The fingerprint this checkout's code gives the run (its model, recipe and distillation teacher)."""
        return self._fingerprint(self.config)

    def _fingerprint(self, config: dict[str, Any]) -> str:
        """The checkout's fingerprint for the run's model and recipe."""
        from harness.engine.provenance import run_code

        return checkout_fingerprint(*run_code(*self._model_and_recipe(), config.get("recipe")))

    def _model_and_recipe(self) -> tuple[str, str]:
        """The run's model and recipe, read from ``spec.json`` without validating the whole spec; a file that is
        not a spec raises as ``spec`` does."""
        raw = read_json(self.dir / "spec.json")
        if not (isinstance(raw, dict) and isinstance(raw.get("model"), str) and isinstance(raw.get("recipe"), str)):
            raw = self.spec.model_dump()
        return raw["model"], raw["recipe"]

    @property
    def final(self) -> dict[str, Any] | None:
        return read_json(self.dir / "final.json")

    @property
    def epochs(self) -> list[dict[str, Any]]:
        """The epoch records of ``metrics.jsonl``. A last line without its newline is being written (or was
        torn by a crash) and is ignored; any other malformed line is skipped with a warning naming it."""
        return read_jsonl(self.dir / "metrics.jsonl")


def set_aside_stale(root: Path, spec: RunSpec) -> Path | None:
    """Move a stale run's directory (not one a live process trains) to ``<root>/stale/<run_id>-<time>`` so
    that the run is recomputed by this code; returns where it went, or None when the run was not stale."""
    directory = run_dir(root, spec)
    if not (directory / "spec.json").exists() or not RunRecord(directory).stale:
        return None
    lock = RunLock.acquire(directory, patience_s=0)
    if lock is None:
        return None
    try:
        target = root / "stale" / f"{spec.run_id}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        directory.rename(target)
    finally:
        lock.release()
    return target


def all_records(root: Path) -> list[RunRecord]:
    """Every run directory under ``root/runs`` that has a spec."""
    return [RunRecord(p.parent) for p in sorted((root / "runs").glob("*/spec.json"))]
