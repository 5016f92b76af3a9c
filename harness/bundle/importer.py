"""``harness import``: a bundle checked completely, then its runs filed under ``<results>/imported/<site>/<run_id>/``.

Checks, each refusing the bundle in one line naming the member: a gzip tar that reads to its end; ``manifest.json``
first, valid against the schema; every other member a regular file (tarfile's ``data`` filter, then no links of
any kind, no devices) at a path the manifest lists, within the size limits (per member and in total, checked on
the header before a byte is decompressed, so a decompression bomb costs nothing), with the listed size and SHA-256;
no listed member missing; each run's spec valid, naming known models and datasets, and hashing to its run id;
its predictions readable without unpickling. The members are extracted into a temporary folder on the destination's
filesystem (inside ``<results>/imported``, or its nearest existing parent) and renamed into place only when every
check passed: nothing is written otherwise.

An imported run directory reads like a local one (``harness.runs.RunRecord``) plus ``origin.json``: the site, the
bundle's digest, the run's code fingerprint and whether it differs from this checkout's, the import date.
``verification.json`` is added by ``harness verify``. A run already imported with the same files is left as it
is (importing a bundle twice changes nothing); one imported with different files is refused, never overwritten.
Local runs (``<results>/runs``) are never touched.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from harness.bundle import BundleError
from harness.bundle.manifest import CHECKPOINT_FILES, MANIFEST_NAME, RUNS_DIR, Manifest, Member, parse
from harness.bundle.origin import ORIGIN_NAME, imported_root
from harness.atomicfile import atomic_write_text
from harness.engine.predictions import ARRAY_NAME, META_NAME, PredictionsError, read_predictions
from harness.names import UnsafePathError, check_name, contained
from harness.runs import RunRecord
from harness.weights.store import hash_file

INCOMING_PREFIX = ".incoming-"
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Limits:
    """The most a bundle may hold: bytes per member (a checkpoint; the run's records, parsed in memory, at most
    ``record_bytes``), bytes in all, members, and bytes of ``manifest.json``."""

    member_bytes: int = 8 << 30
    total_bytes: int = 32 << 30
    members: int = 10_000
    manifest_bytes: int = 16 << 20
    record_bytes: int = 256 << 20

    def for_member(self, path: str) -> int:
        """The size limit of the member at ``path``."""
        checkpoint = path.rsplit("/", 1)[-1] in CHECKPOINT_FILES
        return self.member_bytes if checkpoint else min(self.member_bytes, self.record_bytes)


@dataclass
class ImportOutcome:
    """Where each run of a bundle went: ``imported`` (new), ``unchanged`` (already there, same files)."""

    site: str
    digest: str
    imported: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)


def bundle_digest(manifest_bytes: bytes) -> str:
    return hashlib.sha256(manifest_bytes).hexdigest()


def unpack(bundle: Path, into: Path, limits: Limits = Limits()) -> tuple[Manifest, str]:
    """Extract ``bundle`` into the empty folder ``into`` after every check (module docstring); returns its manifest
    and digest. BundleError (one line naming the member) at the first problem; ``into`` is then left partly filled
    for the caller to remove."""
    name = Path(bundle).name
    if not Path(bundle).is_file():
        raise BundleError(f"{bundle}: no such bundle file")
    try:
        with tarfile.open(bundle, mode="r|gz") as tar:
            manifest, digest = _read_manifest(tar, name, limits)
            seen = _extract_members(tar, name, manifest, into, limits)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise BundleError(f"{name}: not a complete gzip tar archive ({type(err).__name__}: "
                          f"{str(err).splitlines()[0][:120] if str(err) else 'unexpected end'})") from None
    missing = sorted(set(manifest.members) - seen)
    if missing:
        raise BundleError(f"{name}: member {missing[0]}: listed in {MANIFEST_NAME} but not in the archive")
    for run in manifest.runs:
        _check_run(into / RUNS_DIR / run.run_id, run.run_id, name)
    return manifest, digest


def _read_manifest(tar: tarfile.TarFile, name: str, limits: Limits) -> tuple[Manifest, str]:
    first = tar.next()
    if first is None or first.name != MANIFEST_NAME:
        got = f"{first.name!r}" if first is not None else "an empty archive"
        raise BundleError(f"{name}: member {MANIFEST_NAME}: expected as the first member, got {got}")
    if not first.isfile() or first.size > limits.manifest_bytes:
        raise BundleError(f"{name}: member {MANIFEST_NAME}: expected a regular file of at most "
                          f"{limits.manifest_bytes} bytes")
    data = tar.extractfile(first).read()
    return parse(data, f"{name}: member {MANIFEST_NAME}"), bundle_digest(data)


def _extract_members(tar: tarfile.TarFile, name: str, manifest: Manifest, into: Path, limits: Limits) -> set[str]:
    seen: set[str] = set()
    total, count = 0, 1
    while (info := tar.next()) is not None:  # iterating the TarFile would yield manifest.json again
        count += 1
        if count > limits.members:
            raise BundleError(f"{name}: more than {limits.members} members; expected at most that many")
        expected = _check_member(info, name, manifest, into, seen)
        if info.size > limits.for_member(info.name):
            raise BundleError(f"{name}: member {info.name}: {info.size} bytes, above the limit of "
                              f"{limits.for_member(info.name)} for this member")
        total += info.size
        if total > limits.total_bytes:
            raise BundleError(f"{name}: member {info.name}: the members exceed the limit of {limits.total_bytes} "
                              f"bytes in all")
        _copy_checked(tar, info, into / info.name, expected, name)
        seen.add(info.name)
    return seen


def _check_member(info: tarfile.TarInfo, name: str, manifest: Manifest, into: Path, seen: set[str]) -> Member:
    """The manifest's entry of a member that is safe to extract: a regular file at a listed, relative path."""
    where = f"{name}: member {info.name!r}"
    parts = PurePosixPath(info.name).parts
    if info.name.startswith(("/", "\\")) or ".." in parts:
        raise BundleError(f"{where}: an absolute path or one with '..'; expected a plain relative path "
                          f"runs/<run_id>/<file>")
    try:
        filtered = tarfile.data_filter(info, str(into))
    except tarfile.FilterError as err:
        raise BundleError(f"{where}: refused by tarfile's data filter ({type(err).__name__}); expected a regular "
                          f"file at a plain relative path runs/<run_id>/<file>") from None
    if filtered.name != info.name:
        raise BundleError(f"{where}: tarfile's data filter would extract it as {filtered.name!r}; expected a plain "
                          f"relative path")
    if not info.isfile():
        kind = "a link" if info.issym() or info.islnk() else "a directory" if info.isdir() else "a special file"
        raise BundleError(f"{where}: is {kind}; expected a regular file")
    if info.name in seen or info.name == MANIFEST_NAME:
        raise BundleError(f"{where}: appears twice in the archive; expected once")
    expected = manifest.members.get(info.name)
    if expected is None:
        raise BundleError(f"{where}: not listed in {MANIFEST_NAME}; expected only listed members")
    if info.size != expected.size:
        raise BundleError(f"{where}: {info.size} bytes, {MANIFEST_NAME} lists {expected.size}")
    return expected


def _copy_checked(tar: tarfile.TarFile, info: tarfile.TarInfo, target: Path, expected: Member, name: str) -> None:
    """Stream a member to ``target`` while hashing it; refuse it when its SHA-256 is not the listed one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    source = tar.extractfile(info)
    with target.open("xb") as out:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != expected.sha256:
        raise BundleError(f"{name}: member {info.name}: SHA-256 {digest.hexdigest()} differs from the listed "
                          f"{expected.sha256} (the member was altered)")


def _check_run(directory: Path, run_id: str, name: str) -> None:
    """A bundled run's spec validates, names known things and hashes to its run id; its predictions read."""
    import zoo
    from harness.data import list_datasets
    from harness.suite import RunSpec

    where = f"{name}: member {RUNS_DIR}/{run_id}/spec.json"
    try:
        spec = RunSpec.model_validate(json.loads((directory / "spec.json").read_text()))
    except (ValueError, ValidationError, UnsafePathError) as err:
        raise BundleError(f"{where}: not a valid run spec ({str(err).splitlines()[0][:160]})") from None
    if spec.run_id != run_id:
        raise BundleError(f"{where}: hashes to run id {spec.run_id}, not {run_id}")
    if spec.model not in zoo.list_models():
        raise BundleError(f"{where}: model {spec.model!r} is not a registered zoo model")
    if spec.dataset not in list_datasets():
        raise BundleError(f"{where}: dataset {spec.dataset!r}; expected one of {', '.join(list_datasets())}")
    for member in ("config.json", "final.json"):
        try:
            content = json.loads((directory / member).read_text())
        except ValueError:
            content = None
        if not isinstance(content, dict):
            raise BundleError(f"{name}: member {RUNS_DIR}/{run_id}/{member}: expected a JSON object")
    try:
        read_predictions(directory)
    except PredictionsError as err:
        raise BundleError(f"{name}: member {RUNS_DIR}/{run_id}/{ARRAY_NAME} or {META_NAME}: {err}") from None


def import_bundle(bundle: Path, results: Path, limits: Limits = Limits()) -> ImportOutcome:
    """Check ``bundle`` and file its runs under ``<results>/imported/<site>/`` (module docstring)."""

    base = imported_root(results)
    incoming = Path(tempfile.mkdtemp(dir=_nearest_existing(base), prefix=INCOMING_PREFIX))
    try:
        manifest, digest = unpack(bundle, incoming, limits)
        site = base / check_name(manifest.site, "site")
        outcome = ImportOutcome(manifest.site, digest)
        todo = []
        for run in manifest.runs:
            target = site / run.run_id
            if not target.exists():
                todo.append(run)
            elif _same_files(incoming / RUNS_DIR / run.run_id, target, manifest, run.run_id):
                outcome.unchanged.append(target)
            else:
                raise BundleError(f"{Path(bundle).name}: run {run.run_id}: {target} already holds a different result "
                                  f"from site {manifest.site}; refusing to overwrite it")
        if todo:
            site.mkdir(parents=True, exist_ok=True)
            contained(results, site)
        for run in todo:
            source = incoming / RUNS_DIR / run.run_id
            write_origin(source, manifest, run.run_id, digest)
            source.rename(site / run.run_id)
            outcome.imported.append(site / run.run_id)
        return outcome
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor: the temporary folder goes there, on the destination's filesystem,
    so that the final renames are atomic and a refused bundle leaves no folder behind."""
    path = Path(path).resolve()
    while not path.is_dir():
        path = path.parent
    return path


def _same_files(incoming: Path, existing: Path, manifest: Manifest, run_id: str) -> bool:
    """Whether an already imported run holds exactly the bundle's files for it."""
    prefix = f"{RUNS_DIR}/{run_id}/"
    for member, entry in manifest.members.items():
        if member.startswith(prefix):
            path = existing / member[len(prefix):]
            if not path.is_file() or path.is_symlink() or path.stat().st_size != entry.size:
                return False
            if hash_file(path).sha256 != entry.sha256:  # streamed: a member may be an 8 GiB checkpoint
                return False
    return True


def write_origin(directory: Path, manifest: Manifest, run_id: str, digest: str) -> None:
    run = next(run for run in manifest.runs if run.run_id == run_id)
    local_fingerprint = RunRecord(directory).checkout_fingerprint
    origin = {"site": manifest.site, "bundle_sha256": digest, "code": run.code.model_dump(mode="json"),
              "local_code_fingerprint": local_fingerprint,
              "code_differs": run.code.code_fingerprint != local_fingerprint,
              "checkpoint": run.checkpoint.model_dump(mode="json") if run.checkpoint else None,
              "imported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_text(json.dumps(origin, indent=1, sort_keys=True) + "\n", directory / ORIGIN_NAME)
