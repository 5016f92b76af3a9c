"""Whole-or-nothing file writes: a fsynced temporary file renamed over the target, then the folder fsynced.

A write that fails (a full disk, a read-only filesystem) removes its temporary file and raises an ``OSError``
naming the final path, whatever layer the error came through. Kept free of torch, so that reading and writing
run records (``harness.runs``) costs no heavy import.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def os_error_behind(err: BaseException) -> OSError | None:
    """The ``OSError`` that ``err`` is or was raised from (torch wraps a failed ``write`` in a RuntimeError)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def temp_name(path: Path) -> Path:
    """The temporary file this process writes ``path`` through."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def remove_temp_files(*directories: Path) -> None:
    """Remove the temporary files this process left in ``directories`` (a write cut off by a signal)."""
    for directory in directories:
        for tmp in Path(directory).glob(f".*.tmp{os.getpid()}"):
            with contextlib.suppress(OSError):
                tmp.unlink()


@contextlib.contextmanager
def writing(path: Path, tmp: Path | None = None) -> Iterator[None]:
    """Around a write of ``path``: on failure remove ``tmp`` (nothing half-written stays) and re-raise an OS
    error as an ``OSError`` that names ``path`` (a failed ``write()`` names no file at all)."""
    try:
        yield
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        cause = os_error_behind(err)
        if cause is None or cause.errno is None:
            raise
        raise OSError(cause.errno, cause.strerror, str(path)) from err


def atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` via a fsynced temporary file and a rename."""
    tmp = temp_name(path)
    with writing(path, tmp):
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)


def atomic_write_text(text: str, path: Path) -> None:
    """Write ``text`` (UTF-8) to ``path`` via a fsynced temporary file and a rename."""
    atomic_write_bytes(text.encode(), path)
