"""HTTP(S) download of one file into a ``.part`` file: resumed with a ``Range`` request, bounded in size, with a
progress bar on stderr. Standard library only (urllib); the caller verifies and installs the result."""

from __future__ import annotations

import fcntl
import os
import re
import sys
from http.client import HTTPException
from pathlib import Path
from typing import BinaryIO
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from harness.audit import WeightsError

DEFAULT_MAX_BYTES = 2 << 30  # 2 GiB: above the largest released checkpoint in the catalog (171M parameters)
TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 20
PARTIAL_SUFFIX = ".part"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(WeightsError):
    """A download that failed or was refused; one line naming the URL. ``discard``: the partial file is of no
    use for a later resume (e.g. the file is too large)."""

    def __init__(self, message: str, discard: bool = False) -> None:
        super().__init__(message)
        self.discard = discard


def check_url(url: str) -> str:
    """``url`` itself when it is an http(s) URL with a host; else a DownloadError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DownloadError(f"{url!r}: expected an http:// or https:// URL")
    return url


def _open(url: str, offset: int):
    """The response to a GET of ``url`` from byte ``offset``; None when the server says nothing is left."""
    headers = {"User-Agent": "spikebench-weights", **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        return urlopen(Request(url, headers=headers), timeout=TIMEOUT_S)
    except HTTPError as err:
        if err.code == 416 and offset:  # the partial file already holds everything the server has
            return None
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (URLError, OSError, ValueError, HTTPException) as err:
        reason = getattr(err, "reason", None) or err
        raise DownloadError(f"{url}: cannot connect ({reason})") from None


def _resume_offset(response, offset: int) -> int:
    """Where the response's bytes start: ``offset`` for a matching partial answer, 0 when the server resent
    the whole file."""
    if response.status != 206:
        return 0
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    return offset if match and int(match.group(1)) == offset else 0


def _expected_total(response, start: int) -> int | None:
    """The full file size the response announces (from Content-Range or Content-Length), or None."""
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    if match and match.group(3) != "*":
        return int(match.group(3))
    length = response.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


def _too_large(url: str, size: int, max_bytes: int) -> DownloadError:
    return DownloadError(f"{url}: the file is {size:,} bytes, more than the limit of {max_bytes:,} "
                         f"(raise it with --max-bytes)", discard=True)


def download(url: str, part: Path, max_bytes: int = DEFAULT_MAX_BYTES, progress: bool = True) -> int:
    """Append what ``part`` lacks of ``url`` (all of it when ``part`` is absent) and return the final size.

    A partial file is resumed with a Range request (restarted when the server ignores it); a second fetch of the
    same file while one runs is refused. A file larger than ``max_bytes`` is refused before or while it arrives
    and its partial file removed. A connection that drops early keeps the partial file for the next attempt.
    """
    check_url(url)
    with part.open("a+b") as out:  # appends land at the end, which truncate() sets to where the server resumes
        _lock(out, part)  # outside the cleanup below: a running fetch's file is never ours to remove
        try:
            size = _receive(url, out, max_bytes, progress, part.name.removesuffix(PARTIAL_SUFFIX))
        except DownloadError as err:
            out.flush()
            if err.discard or os.fstat(out.fileno()).st_size == 0:
                part.unlink(missing_ok=True)
            raise
    return size


def _lock(out: BinaryIO, part: Path) -> None:
    """Hold an exclusive lock on the partial file: two fetches appending to it would corrupt it."""
    try:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise DownloadError(f"{part}: another fetch of this file is running; wait for it to finish") from None


def _receive(url: str, out: BinaryIO, max_bytes: int, progress: bool, label: str) -> int:
    """Write the body of ``url`` into ``out`` from where the server resumes; the file's final size."""
    from tqdm import tqdm

    offset = os.fstat(out.fileno()).st_size
    response = _open(url, offset)
    if response is None:
        return offset
    with response:
        start = _resume_offset(response, offset)
        total = _expected_total(response, start)
        if total is not None and total > max_bytes:
            raise _too_large(url, total, max_bytes)
        size = start
        out.truncate(start)
        with tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                  desc=label, disable=not progress, leave=False) as bar:
            while chunk := _read(response, url):
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(url, size, max_bytes)
                out.write(chunk)
                bar.update(len(chunk))
    if total is not None and size < total:
        raise DownloadError(f"{url}: the connection closed after {size:,} of {total:,} bytes; the partial file "
                            f"is kept: run the same fetch again to resume")
    return size


def _read(response, url: str) -> bytes:
    """The next chunk of the body; a connection error mid-way is a DownloadError (the partial file is kept)."""
    try:
        return response.read(CHUNK_BYTES)
    except (OSError, ValueError, HTTPException) as err:
        raise DownloadError(f"{url}: the connection failed mid-way ({err}); run the same fetch again to "
                            f"resume") from None
