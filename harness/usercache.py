"""Facts that cost a heavy import to learn, kept per user on disk so that a command asks the library once per
version: ``$SPIKEBENCH_CACHE``, else ``$XDG_CACHE_HOME/spikebench``, else ``~/.cache/spikebench``.

Each entry is a JSON file holding the key it was computed under and its value: a different key (another library
version) recomputes it. A file that is not such JSON, or is a link, is ignored and rewritten; a cache that cannot
be written is skipped (the value is still returned). Imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from harness.atomicfile import atomic_write_text


def cache_dir() -> Path:
    """Where the entries live (see the module's docstring)."""
    if os.environ.get("SPIKEBENCH_CACHE"):
        return Path(os.environ["SPIKEBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spikebench"


def cached(name: str, key: str, compute: Callable[[], Any], valid: Callable[[Any], bool]) -> Any:
    """The value stored as ``name`` under ``key`` when it passes ``valid``; else ``compute()``, stored for the
    next call."""
    stored = lookup(name, key, valid)
    if stored is not None:
        return stored
    value = compute()
    store(name, key, value)
    return value


def lookup(name: str, key: str, valid: Callable[[Any], bool]) -> Any:
    """The value stored as ``name`` under ``key`` when there is one and it passes ``valid``, else None."""
    stored = _read(cache_dir() / f"{name}.json")
    if isinstance(stored, dict) and stored.get("key") == key and valid(stored.get("value")):
        return stored["value"]
    return None


def store(name: str, key: str, value: Any) -> None:
    """Keep ``value`` (JSON) as ``name`` under ``key``, atomically; skipped where the cache cannot be written."""
    path = cache_dir() / f"{name}.json"
    with contextlib.suppress(OSError):  # read-only home, full disk: the next call computes it again
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json.dumps({"key": key, "value": value}), path)


def _read(path: Path) -> Any:
    """The entry's JSON, or None when it is missing, a link, unreadable or not JSON."""
    if path.is_symlink():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def file_stamps(paths: Iterable[Path], relative_to: Path | None = None) -> list[list[Any]]:
    """Each file's path (relative to ``relative_to`` when given), size, inode, modification and change times (None
    for a missing one): what changes when a file is written, without reading it, for keys of entries that hold
    what was computed from those files."""
    stamps: list[list[Any]] = []
    for path in paths:
        name = Path(path).relative_to(relative_to).as_posix() if relative_to else str(path)
        try:
            info = os.stat(path)
        except FileNotFoundError:
            stamps.append([name, None])
            continue
        stamps.append([name, info.st_size, info.st_ino, info.st_mtime_ns, info.st_ctime_ns])
    return stamps


def tree_files(root: Path, parts: Iterable[str]) -> list[Path]:
    """The files of ``root``'s ``parts`` (files or folders, searched to the bottom, ``__pycache__`` left out),
    sorted."""
    files: list[Path] = []
    for part in parts:
        base = Path(root) / part
        if base.is_file():
            files.append(base)
        elif base.is_dir():
            files += sorted(p for p in base.rglob("*") if "__pycache__" not in p.parts and p.is_file())
    return files
