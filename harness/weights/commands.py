"""``python -m harness weights ls | fetch | import | verify``: the catalog's files under the data root.

Each command raises ``WeightsError`` (or ``CatalogError``) with one line for anything the user can fix; the
command line turns it into ``error: ...`` and exit code 2.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.audit import WeightsError, load_state, read_weights_file
from harness.weights.catalog import WEIGHTS_SUBDIR, Catalog, WeightsEntry, stored_path, weights_dir
from harness.weights.download import DEFAULT_MAX_BYTES, PARTIAL_SUFFIX, check_url, download
from harness.weights.fitting import build_model, check_fits
from harness.weights.store import (Digests, check_digests, destination, hash_file, incoming_file, install,
                                   read_record, removed_if_left_empty, stored_files, trusted_record)


def entry_for(catalog: Catalog, model: str) -> WeightsEntry:
    """The catalog entry of a zoo model; an unknown name lists close matches, a model without released
    weights says so."""
    from harness.argtypes import unknown_model

    problem = unknown_model(model)
    if problem:
        raise WeightsError(problem)
    try:
        return catalog.get(model)
    except KeyError as err:
        raise WeightsError(str(err.args[0])) from None


# ----------------------------------------------------------------------------------------------------- ls

def sha256_status(entry: WeightsEntry, path: Path) -> str:
    """How the stored file's recorded hashes compare with the catalog's, read from its record (no re-hash)."""
    if not path.is_file():
        return "-"
    record = trusted_record(path)
    if record is None:
        return "unrecorded" if read_record(path) is None else "changed since recorded"
    if entry.sha256 is not None:
        return "matches pinned" if record["sha256"] == entry.sha256 else "differs from pinned"
    if entry.md5 is not None:
        return "md5 matches" if record.get("md5") == entry.md5 else "md5 differs"
    return "no pinned hash"


def list_rows(catalog: Catalog, data_root: Path, pattern: str = "*") -> list[dict[str, Any]]:
    """One row per catalog entry matching ``pattern``: the entry, where its file goes, whether it is there
    (or partly downloaded) and how its recorded hash compares with the pinned one."""
    rows = []
    for entry in catalog.entries.values():
        if not fnmatch.fnmatchcase(entry.model, pattern):
            continue
        path = stored_path(data_root, entry)
        partial = path.with_name(path.name + PARTIAL_SUFFIX)
        rows.append({**entry.model_dump(), "stored_path": str(path), "present": path.is_file(),
                     "partial_bytes": partial.stat().st_size if partial.is_file() else 0,
                     "sha256_status": sha256_status(entry, path)})
    if not rows:
        close = difflib.get_close_matches(pattern, list(catalog.entries), n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `weights ls` lists them all"
        raise WeightsError(f"no catalog entry matches {pattern!r}{hint}")
    return rows


def format_row(row: dict[str, Any]) -> str:
    """A listing row as one line: model, stored or not, hash status, how to get it."""
    present = "stored" if row["present"] else f"partial {row['partial_bytes']:,} B" if row["partial_bytes"] \
        else "absent"
    how = "fetch" if row["url"] else "by hand + import"
    return f"{row['model']:30s} {present:18s} {row['sha256_status']:22s} {how:17s} {row['stored_path']}"


# -------------------------------------------------------------------------------------------- fetch / import

def _verify_and_install(tmp: Path, dest: Path, entry: WeightsEntry, expected_sha256: str | None,
                        origin: str, shown_as: str) -> Digests:
    """Check a complete file at ``tmp`` (hashes, weights-only read, strict fit) and rename it into place; errors
    name it ``shown_as`` (the user's file or the URL), not the temporary name."""
    digests = hash_file(tmp)
    check_digests(digests, entry, expected_sha256, shown_as)
    try:
        check_fits(entry, tmp)
    except WeightsError as err:
        raise WeightsError(str(err).replace(str(tmp), shown_as, 1)) from None
    install(tmp, dest, digests, origin)
    return digests


def _already_stored(dest: Path, entry: WeightsEntry, expected_sha256: str | None) -> bool:
    """Whether ``dest`` holds a recorded file with the expected hash (any, when none is pinned)."""
    record = trusted_record(dest)
    expected = expected_sha256 or entry.sha256
    return record is not None and (expected is None or record["sha256"] == expected) \
        and (entry.md5 is None or record.get("md5") == entry.md5)


def no_link_message(entry: WeightsEntry, data_root: Path) -> str:
    """Where to download a release that has no direct link, and how to import it."""
    page = entry.download_page or entry.source
    return (f"{entry.model}: the release has no direct link; download it by hand from {page} (linked from "
            f"{entry.source}), then run: python -m harness weights import {entry.model} FILE --data-root {data_root}")


def fetch(catalog: Catalog, model: str, data_root: Path, url: str | None = None, sha256: str | None = None,
          max_bytes: int = DEFAULT_MAX_BYTES, progress: bool = True) -> tuple[Path, Digests | None]:
    """Download ``model``'s file (the catalog's URL, or ``url``), verify and install it; the stored path and its
    digests (None when it was there already). A partial download resumes; a rejected one is deleted."""
    entry = entry_for(catalog, model)
    url = url or entry.url
    if url is None:
        raise WeightsError(no_link_message(entry, data_root))
    check_url(url)
    dest = destination(data_root, entry)
    if _already_stored(dest, entry, sha256):
        return dest, None
    part = dest.with_name(dest.name + PARTIAL_SUFFIX)
    with removed_if_left_empty(dest.parent):
        download(url, part, max_bytes, progress)
        with incoming_file(dest.parent, dest.suffix) as tmp:
            os.replace(part, tmp)
            try:
                return dest, _verify_and_install(tmp, dest, entry, sha256, url, url)
            except WeightsError as err:
                raise WeightsError(f"{err}; the download was deleted") from None


def import_file(catalog: Catalog, model: str, source: Path, data_root: Path,
                sha256: str | None = None) -> tuple[Path, Digests]:
    """Copy a file downloaded by hand into place once it reads weights-only and fits ``model`` strictly."""
    entry = entry_for(catalog, model)
    source = Path(source)
    if not source.is_file():
        raise WeightsError(f"{source}: no such file")
    dest = destination(data_root, entry)
    if (source.suffix == ".safetensors") != (dest.suffix == ".safetensors"):
        raise WeightsError(f"{source}: a {'safetensors' if source.suffix == '.safetensors' else 'torch'} file, but "
                           f"{model}'s release ({entry.format}) is stored as {dest.name}")
    with removed_if_left_empty(dest.parent), incoming_file(dest.parent, dest.suffix) as tmp:
        try:
            shutil.copyfile(source, tmp)
        except OSError as err:
            raise WeightsError(f"{source}: cannot copy it to {dest.parent}: {err.strerror or err}") from None
        digests = _verify_and_install(tmp, dest, entry, sha256, f"imported from {source.resolve()}", str(source))
    return dest, digests


# ---------------------------------------------------------------------------------------------------- verify

@dataclass(frozen=True)
class Verdict:
    """The outcome of re-checking one stored file."""

    path: Path
    status: str  # ok | sha mismatch | unrecorded | unreadable | does not fit | not in catalog
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Whether the file passed every check."""
        return self.status == "ok"


def verify_file(entry: WeightsEntry, path: Path) -> Verdict:
    """Re-hash ``path`` against its record and the catalog, then re-load it into ``entry``'s model."""
    try:
        digests = hash_file(path)
    except OSError as err:
        return Verdict(path, "unreadable", err.strerror or str(err))
    record = read_record(path)
    if record is None:
        return Verdict(path, "unrecorded", "no .sha256 record beside it: store it with `weights import`")
    for name, expected, got in (("recorded sha256", record["sha256"], digests.sha256),
                                ("catalog sha256", entry.sha256, digests.sha256),
                                ("catalog md5", entry.md5, digests.md5)):
        if expected is not None and got != expected:
            return Verdict(path, "sha mismatch", f"{name} {expected}, file {got}")
    try:
        state = read_weights_file(path)
    except WeightsError as err:
        return Verdict(path, "unreadable", str(err))
    try:
        load_state(build_model(entry), state, path)
    except WeightsError as err:
        return Verdict(path, "does not fit", str(err))
    return Verdict(path, "ok", digests.sha256)


def verify(catalog: Catalog, data_root: Path, model: str | None = None) -> list[Verdict]:
    """Re-check every stored file (of ``model``, or of every model folder under ``<data-root>/weights``)."""
    if model is not None:
        entry = entry_for(catalog, model)
        files = stored_files(weights_dir(data_root, model))
        if not files:
            raise WeightsError(f"{model}: nothing stored under {weights_dir(data_root, model)}; "
                               f"`weights fetch` or `weights import` it first")
        return [verify_file(entry, path) for path in files]
    root = Path(data_root) / WEIGHTS_SUBDIR
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    verdicts = []
    for folder in folders:
        entry = catalog.entries.get(folder.name)
        for path in stored_files(folder):
            verdicts.append(verify_file(entry, path) if entry is not None else
                            Verdict(path, "not in catalog", f"{folder.name} has no catalog entry"))
    return verdicts
