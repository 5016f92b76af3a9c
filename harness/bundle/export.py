"""``harness export``: local runs into one content-addressed bundle (``.tar.gz``).

The archive holds ``manifest.json`` first, then ``runs/<run_id>/<file>`` for every run: spec, resolved config,
status, per-epoch metrics, final metrics, energy audit, firing rates, per-image predictions, ``environment.json``
(packages, device, driver) and, with ``--with-weights``, the checkpoint that gave the predictions (its SHA-256
is always in the manifest). The archive is byte-reproducible (sorted members, zero times and owners, gzip
without a time stamp), so exporting the same runs twice from one checkout gives the same file; its digest, the
SHA-256 of ``manifest.json``, names it.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.bundle import BundleError
from harness.bundle.manifest import (MANIFEST_NAME, RUNS_DIR, SCHEMA_VERSION, BundledRun, Checkpoint, Code, Manifest,
                                     Member, dump, sha256_bytes)
from harness.bundle.selection import checkpoint_file, environment
from harness.engine.predictions import ARRAY_NAME, META_NAME
from harness.names import check_name
from harness.runs import RunRecord
from harness.weights.store import hash_file

CARRIED = ("spec.json", "status.json", "config.json", "metrics.jsonl", "final.json", "energy.json", "firing.json",
           "firing.md", ARRAY_NAME, META_NAME)


@dataclass
class Bundle:
    """What an export writes: the manifest and, by member path, each member's source (a file or bytes)."""

    site: str
    runs: list[BundledRun] = field(default_factory=list)
    sources: dict[str, Path | bytes] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)

    def add(self, member: str, source: Path | bytes) -> None:
        if isinstance(source, bytes):
            self.members[member] = Member(sha256=sha256_bytes(source), size=len(source))
        else:
            digests = hash_file(source)
            self.members[member] = Member(sha256=digests.sha256, size=digests.size)
        self.sources[member] = source

    def manifest(self) -> Manifest:
        from harness.engine.provenance import git_state

        git = git_state()  # the code of each run is fingerprinted per run (runs[].code): there is no global one
        return Manifest(format="spikebench-bundle", schema_version=SCHEMA_VERSION, site=self.site,
                        exported_by=Code(code_fingerprint=None, commit=git.get("commit"), dirty=git.get("dirty")),
                        runs=sorted(self.runs, key=lambda run: run.run_id), members=self.members)


def collect(records: list[RunRecord], site: str, with_weights: bool) -> Bundle:
    """Every carried file of ``records`` (and their checkpoints with ``with_weights``) into a Bundle."""
    bundle = Bundle(site=check_name(site, "--site"))
    for record in records:
        _add_run(bundle, record, with_weights)
    return bundle


def _add_run(bundle: Bundle, record: RunRecord, with_weights: bool) -> None:
    spec, config = record.spec, record.config
    base = f"{RUNS_DIR}/{spec.run_id}"
    for name in CARRIED:
        if (record.dir / name).is_file():
            bundle.add(f"{base}/{name}", record.dir / name)
    bundle.add(f"{base}/environment.json", (json.dumps(environment(config), indent=1, sort_keys=True) + "\n").encode())
    provenance = config.get("provenance", {})
    git = provenance.get("git", {})
    fingerprint = (record.final or {}).get("code_fingerprint", provenance.get("code_fingerprint"))
    bundle.runs.append(BundledRun(
        run_id=spec.run_id, model=spec.model, dataset=spec.dataset, T=spec.T, seed=spec.seed, variant=spec.variant,
        eval_only=spec.eval_only, state=record.state,
        code=Code(code_fingerprint=fingerprint, commit=git.get("commit"), dirty=git.get("dirty")),
        checkpoint=_checkpoint(bundle, record, base, with_weights),
        predictions=(record.dir / ARRAY_NAME).is_file() and (record.dir / META_NAME).is_file()))


def _checkpoint(bundle: Bundle, record: RunRecord, base: str, with_weights: bool) -> Checkpoint | None:
    path = checkpoint_file(record)
    if path is None:
        if with_weights:
            raise BundleError(f"run {record.dir.name}: --with-weights, but its checkpoint is gone from {record.dir}")
        return None
    member = None
    if with_weights:
        member = f"{base}/checkpoint.safetensors" if path.suffix == ".safetensors" else f"{base}/checkpoint.pt"
        bundle.add(member, path)
        digest = bundle.members[member]
    else:
        digests = hash_file(path)
        digest = Member(sha256=digests.sha256, size=digests.size)
    return Checkpoint(sha256=digest.sha256, size=digest.size, name=path.name, member=member)


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    """A regular file's header with nothing that varies between machines or times."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.type = size, 0o644, 0, tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write(bundle: Bundle, out: Path | None, directory: Path = Path(".")) -> tuple[Path, str]:
    """Write the archive atomically (a temporary file beside ``out``, renamed when complete); returns its path and
    its digest. Without ``out`` it is ``<directory>/spikebench-<site>-<digest[:16]>.tar.gz``."""
    manifest = dump(bundle.manifest())
    digest = sha256_bytes(manifest)
    out = Path(out) if out else Path(directory) / f"spikebench-{bundle.site}-{digest[:16]}.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_tar_info(MANIFEST_NAME, len(manifest)), io.BytesIO(manifest))
            for member in sorted(bundle.sources):
                _add_member(tar, member, bundle.sources[member], bundle.members[member])
        os.replace(name, out)
    finally:
        Path(name).unlink(missing_ok=True)
    return out, digest


def _add_member(tar: tarfile.TarFile, member: str, source: Path | bytes, expected: Member) -> None:
    if isinstance(source, bytes):
        tar.addfile(_tar_info(member, len(source)), io.BytesIO(source))
        return
    with source.open("rb") as fh:
        if os.fstat(fh.fileno()).st_size != expected.size:
            raise BundleError(f"{source}: changed while the bundle was written; export again")
        tar.addfile(_tar_info(member, expected.size), fh)
