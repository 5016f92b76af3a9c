"""Where a suite's ``weights:`` points, and the SHA-256 of that file (hashed once, then read from its sidecar).

A run entry may say ``weights: released`` (the catalog's file for its model, ``<data-root>/weights/<model>/<file>``)
or ``weights: PATH``: an absolute path, or a path relative to the data root (the same root the datasets and the
released weights live under, so a suite stays valid on another machine). A relative path may not leave the data
root (``..``), and the file must be a regular file. The catalog read is ``$SPIKEBENCH_WEIGHTS_CATALOG`` when set
(tests and private catalogs), else the package's ``catalog.yaml``.

The SHA-256 of a file is computed once and recorded beside it as ``<file>.sha256`` (the record ``harness weights``
writes: ``harness.weights.store``); it is reused while the file's size and modification time are those recorded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.weights.catalog import RELEASED, Catalog, active_catalog, stored_path
from harness.weights.store import hash_file, read_record, record_path, trusted_record, write_record



class WeightsLocationError(ValueError):
    """A ``weights:`` value that cannot name a usable file (the message is one line)."""


@dataclass(frozen=True)
class LocatedWeights:
    """A run's weights file: where it is (``location``: relative to the data root when under it, else absolute),
    its SHA-256 (None while the file is missing and the catalog pins none), and where to get it when missing."""

    path: Path
    location: str
    sha256: str | None
    present: bool
    source: str | None

    def missing_line(self, model: str) -> str:
        """What a missing file needs: the expected path and where the release is linked."""
        root = f" --data-root {self.path.parents[2]}"  # <data-root>/weights/<model>/<file>
        where = f"; get it from {self.source} (`python -m harness weights fetch {model}{root}` or `python -m " \
                f"harness weights import {model} FILE{root}`)" if self.source else ""
        return f"{model}: weights file missing: expected {self.path}{where}"


def file_sha256(path: Path) -> str:
    """The SHA-256 of ``path``, from its record when the file's size and mtime match it, else computed (and the
    record written, unless one this function cannot read is there; a read-only directory only costs the reuse)."""
    recorded = trusted_record(path)
    if recorded is not None:
        return recorded["sha256"]
    digests = hash_file(path)
    if read_record(path) is None and record_path(path).exists():  # another tool's file, in another format: kept
        return digests.sha256
    try:
        write_record(path, digests, "hashed when a run was planned")
    except OSError:
        pass
    return digests.sha256


def locate(model: str, weights: str, data_root: Path, catalog: Catalog | None = None) -> LocatedWeights:
    """Resolve ``weights`` (``released`` or a path) for ``model`` under ``data_root``; a present file is hashed and,
    when the catalog pins a SHA-256 for it, checked against it. Raises ``WeightsLocationError`` (one line)."""
    data_root = Path(data_root)
    if weights == RELEASED:
        catalog = catalog or active_catalog()
        try:
            entry = catalog.get(model)
        except KeyError as err:
            raise WeightsLocationError(str(err.args[0])) from None
        path, pinned, source = stored_path(data_root, entry), entry.sha256, entry.source
    else:
        path, pinned, source = _user_path(weights, data_root), None, None
    location = _location(path, data_root)
    if not os.path.lexists(path):
        return LocatedWeights(path, location, pinned, False, source)
    if path.is_symlink() or not path.is_file():
        raise WeightsLocationError(f"{path}: not a regular file; expected a weights file (links are refused)")
    if weights != RELEASED and not Path(weights).is_absolute() and \
            not path.resolve().is_relative_to(data_root.resolve()):
        raise WeightsLocationError(f"weights {weights!r}: leads out of the data root {data_root} through a link")
    sha = file_sha256(path)
    if pinned is not None and sha != pinned:
        raise WeightsLocationError(f"{path}: SHA-256 {sha} differs from the catalog's {pinned} (see {source}); "
                                   f"the file is damaged or another release: fetch it again")
    return LocatedWeights(path, location, sha, True, source)


def _user_path(weights: str, data_root: Path) -> Path:
    """An absolute path as given; a relative one under the data root, which it may not leave."""
    given = Path(weights)
    if given.is_absolute():
        return given
    if ".." in given.parts:
        raise WeightsLocationError(f"weights {weights!r}: a relative path may not contain '..'; expected a path "
                                   f"under the data root {data_root} or an absolute path")
    return data_root / given


def _location(path: Path, data_root: Path) -> str:
    """``path`` relative to the data root when it lies under it (how the run records it), else absolute."""
    try:
        return str(path.relative_to(data_root))
    except ValueError:
        return str(path)


def resolve_location(location: str, data_root: Path) -> Path:
    """The file a recorded ``location`` names under this process's data root."""
    path = Path(location)
    return path if path.is_absolute() else Path(data_root) / path
