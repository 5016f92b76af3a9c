"""Weights files under the data root: where each goes, its atomic install, and the record kept beside it.

A stored file ``<file>`` has a record ``<file>.sha256`` (JSON: sha256, md5, size, mtime_ns, origin) written when it
was installed; a reader whose file still has the recorded size and mtime can trust the hash without re-reading
gigabytes (``trusted_record``). Files arrive through a temporary name in the same folder and are renamed into
place only once complete and verified, so a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from harness.audit import WeightsError
from harness.names import contained
from harness.weights.catalog import WEIGHTS_SUBDIR, WeightsEntry, stored_path
from harness.weights.download import PARTIAL_SUFFIX

RECORD_SUFFIX = ".sha256"
INCOMING_PREFIX = ".incoming-"  # temporary files of an install in progress
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Digests:
    """What ``hash_file`` measured: both digests in one read, and the size."""

    sha256: str
    md5: str
    size: int


def hash_file(path: Path) -> Digests:
    """SHA-256 and MD5 of a file, read once in 1 MiB chunks."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with Path(path).open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return Digests(sha.hexdigest(), md5.hexdigest(), size)


def check_digests(digests: Digests, entry: WeightsEntry, expected_sha256: str | None, what: str) -> None:
    """Refuse a file whose SHA-256 (``expected_sha256``, else the catalog's) or whose catalog MD5 differs."""
    sha256 = expected_sha256 or entry.sha256
    if sha256 is not None and digests.sha256 != sha256:
        raise WeightsError(f"{what}: sha256 {digests.sha256} does not match the expected {sha256}")
    if entry.md5 is not None and digests.md5 != entry.md5:
        raise WeightsError(f"{what}: md5 {digests.md5} does not match the catalog's {entry.md5} for "
                           f"{entry.model} (a different file than the one released)")


def record_path(path: Path) -> Path:
    """``<file>.sha256``: the record beside a stored file."""
    return path.with_name(path.name + RECORD_SUFFIX)


def write_record(path: Path, digests: Digests, origin: str) -> None:
    """Record the file's digests with its current size and mtime (and where it came from), atomically."""
    stat = path.stat()
    record = {"file": path.name, "sha256": digests.sha256, "md5": digests.md5, "size": stat.st_size,
              "mtime_ns": stat.st_mtime_ns, "origin": origin}
    with incoming_file(path.parent, RECORD_SUFFIX) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, record_path(path))


def read_record(path: Path) -> dict | None:
    """The record of a stored file, or None when it has none or it is unreadable."""
    try:
        record = json.loads(record_path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("sha256"), str) else None


def trusted_record(path: Path) -> dict | None:
    """The record when the file still has the recorded size and mtime: its hashes can be trusted without
    re-reading the file; None when there is no record or the file changed since."""
    record = read_record(path)
    if record is None or not path.is_file():
        return None
    stat = path.stat()
    return record if (record.get("size"), record.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns) else None


def destination(data_root: Path, entry: WeightsEntry) -> Path:
    """Where ``entry``'s file goes, its folder made; refused when a link would lead the write outside the data
    root or the file's place is taken by a link."""
    dest = stored_path(data_root, entry)
    contained(Path(data_root) / WEIGHTS_SUBDIR, dest.parent)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WeightsError(f"{dest.parent}: cannot create the folder: {err.strerror or err}") from None
    if dest.is_symlink():
        raise WeightsError(f"{dest}: is a symbolic link; refusing to write through it (remove it first)")
    return dest


@contextmanager
def incoming_file(folder: Path, suffix: str) -> Iterator[Path]:
    """A fresh temporary path in ``folder`` ending in ``suffix``, removed on exit unless renamed away."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=INCOMING_PREFIX, suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def removed_if_left_empty(folder: Path) -> Iterator[None]:
    """Remove ``folder`` on exit when nothing was stored in it, so a refused or failed file leaves no empty model
    folder under the data root (a folder holding files, records or a partial download stays)."""
    try:
        yield
    finally:
        with suppress(OSError):
            folder.rmdir()


def install(tmp: Path, dest: Path, digests: Digests, origin: str) -> None:
    """Rename a complete, verified file into place and record its digests beside it."""
    os.replace(tmp, dest)
    write_record(dest, digests, origin)


def stored_files(folder: Path) -> list[Path]:
    """The weights files of a model folder: not records, partial downloads or installs in progress."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith(INCOMING_PREFIX)
                  and not p.name.endswith((RECORD_SUFFIX, PARTIAL_SUFFIX)) and (p.is_file() or p.is_symlink()))
