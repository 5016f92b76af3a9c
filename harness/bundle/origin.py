"""Where a run directory's results come from and whether they were re-checked here, read from the files
``harness import`` (``origin.json``) and ``harness verify`` (``verification.json``) leave beside an imported run.

A run without ``origin.json`` was computed in this results directory: its source is ``LOCAL_SOURCE``. An imported
run's source is its bundle's site; it is shown as ``"<site> (imported)"`` (``source_label``), so that a bundle
exported under the default site name ``local`` never reads as this machine's own run. A run is "verified" or
"disagrees" once ``harness verify`` re-evaluated it (local runs can be verified too), "not verified" before.
Light on purpose (no torch): tracking and reports read it for every run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.bundle import BundleError

IMPORTED_DIR = "imported"
ORIGIN_NAME = "origin.json"
VERIFICATION_NAME = "verification.json"
LOCAL_SOURCE = "local"
VERIFIED, DISAGREES, NOT_VERIFIED = "verified", "disagrees", "not verified"
IMPORTED_SUFFIX = " (imported)"


@dataclass(frozen=True)
class RunSource:
    """A run's source (``LOCAL_SOURCE`` or the imported bundle's site) and its verification state: the verdict
    (``VERIFIED``, ``DISAGREES`` or ``NOT_VERIFIED``) with its date, compared images and disagreements."""

    source: str
    imported: bool
    verdict: str = NOT_VERIFIED
    date: str | None = None
    images: int | None = None
    disagreements: int | None = None

    @property
    def label(self) -> str:
        return source_label(self.source, self.imported)


def imported_root(results: Path) -> Path:
    return Path(results) / IMPORTED_DIR


def imported_runs(results: Path, run_id: str = "*") -> list[Path]:
    """The imported run directories under ``results`` (``imported/<site>/<run_id>/``, those with a spec), sorted;
    with ``run_id``, only that run's, at every site. What a report reads beside ``<results>/runs``."""
    return [spec.parent for spec in sorted(imported_root(results).glob(f"*/{run_id}/spec.json"))]


def source_label(source: str, imported: bool) -> str:
    """How a source is shown and filtered: ``local`` for this results directory's runs, ``<site> (imported)``
    for an imported run."""
    return f"{source}{IMPORTED_SUFFIX}" if imported else source


def _read_object(path: Path, files: Mapping[str, bytes | None] | None = None) -> dict[str, Any] | None:
    """A JSON object file's content (None when absent), from ``files[path.name]`` when the caller read it already;
    BundleError naming the file when it is not one."""
    try:
        raw = path.read_bytes() if files is None else files[path.name]
    except FileNotFoundError:
        raw = None
    if raw is None:
        return None
    try:
        content = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise BundleError(f"{path}: not valid JSON ({str(err).splitlines()[0][:120]})") from None
    if not isinstance(content, dict):
        raise BundleError(f"{path}: expected a JSON object, found {type(content).__name__}")
    return content


def _field(content: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    value = content.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BundleError(f"{path}: field {key!r} is {value!r}; expected {names}")
    return value


def run_source(directory: Path, files: Mapping[str, bytes | None] | None = None) -> RunSource:
    """The source and verification state of the run in ``directory``; BundleError naming the file when its
    ``origin.json`` or ``verification.json`` cannot be read as what ``harness import``/``verify`` write.
    ``files``: the bytes of both files (None: absent) when the caller read them already (``collect`` reads each
    file of a run once)."""
    directory = Path(directory)
    origin = _read_object(directory / ORIGIN_NAME, files)
    source = LOCAL_SOURCE if origin is None else _field(origin, "site", str, directory / ORIGIN_NAME)
    check = _read_object(directory / VERIFICATION_NAME, files)
    if check is None:
        return RunSource(source, origin is not None)
    path = directory / VERIFICATION_NAME
    verdict = _field(check, "verdict", str, path)
    if verdict not in (VERIFIED, DISAGREES):
        raise BundleError(f"{path}: field 'verdict' is {verdict!r}; expected {VERIFIED!r} or {DISAGREES!r}")
    return RunSource(source, origin is not None, verdict, _field(check, "date", str, path),
                     _field(check, "images", int, path), _field(check, "disagreements", int, path))
