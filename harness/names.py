"""Names that become file and directory names (suites, variants, run ids, MLflow experiments), checked in one
place, and the containment check that keeps every write of a run under the results root.

A suite file or a results folder may come from someone else: a name such as ``../../x`` or ``/etc`` must not
move a write outside the folder it is meant for, and a symlink planted in a run directory must not redirect one.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_NAME_LENGTH = 128


class UnsafePathError(ValueError):
    """A name or a path would reach outside the folder it belongs in; the message says which and why."""


def has_control_characters(value: str) -> bool:
    """Whether ``value`` holds a NUL or another control character (never part of a file name we write)."""
    return any(ord(c) < 32 or ord(c) == 127 for c in value)


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot be used as one path component, or None when it can."""
    if not value or value.strip() != value:
        return "is empty or starts or ends with white space"
    if value in (".", ".."):
        return "is a relative directory"
    if "/" in value or "\\" in value:
        return "contains a path separator ('/' or '\\')"
    if has_control_characters(value):
        return "contains a NUL or control character"
    if len(value) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters"
    return None


def check_name(value: str, what: str = "name") -> str:
    """``value`` itself when it is a safe single path component; otherwise an UnsafePathError naming ``what``."""
    problem = name_problem(value)
    if problem:
        raise UnsafePathError(f"{what} {value!r} {problem}; expected a plain name (no '/', '..' or control characters)")
    return value


def contained(root: Path, path: Path) -> Path:
    """``path`` resolved (symlinks followed), when it lies inside ``root`` resolved; else UnsafePathError."""
    base, target = Path(root).resolve(), Path(path).resolve()
    if not target.is_relative_to(base):
        raise UnsafePathError(f"{path} resolves to {target}, outside {base}; refusing to write there")
    return target


def check_tree(root: Path, directory: Path) -> None:
    """Every entry under ``directory`` resolves inside ``root``: no planted symlink leads a later write outside."""
    for parent, dirs, files in os.walk(directory):
        for entry in (*dirs, *files):
            contained(root, Path(parent) / entry)
