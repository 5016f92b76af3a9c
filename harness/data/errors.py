"""The one error a missing or malformed dataset raises: what was expected where, what was found, where to get it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class DatasetError(RuntimeError):
    """A dataset is missing, incomplete or malformed; the message says how to fix it."""


def _listing(path: Path, limit: int = 12) -> str:
    """A short description of what is at ``path`` (for error messages)."""
    if not path.exists():
        return "nothing (the path does not exist)"
    if path.is_file():
        return f"a file of {path.stat().st_size} bytes"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    if not names:
        return "an empty directory"
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} entries)" if len(names) > limit else "")


def missing_dataset(name: str, root: Path, expected: Iterable[str], download: str, hint: str = "") -> DatasetError:
    """Build the error for a dataset whose expected files are not (all) at ``root``."""
    lines = [
        f"dataset {name!r} not found or incomplete under {root}",
        "expected: " + "; ".join(expected),
        f"found at {root}: {_listing(root)}",
        f"obtain it from {download} (spikebench never downloads datasets)",
    ]
    if hint:
        lines.append(hint)
    return DatasetError("\n".join(lines))


def corrupt_file(name: str, path: Path, problem: str, download: str) -> DatasetError:
    """Build the error for a dataset file that exists but cannot be read as expected."""
    return DatasetError(
        f"dataset {name!r}: file {path} is malformed: {problem}\n"
        f"re-obtain the original files from {download}"
    )
