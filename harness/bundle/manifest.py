"""The bundle manifest (``manifest.json``, schema version 1): what a bundle holds and the SHA-256 of every member.

The pydantic models below are the schema; ``schema/manifest-v1.json`` is their JSON Schema, generated from them
(``python -m harness.bundle.manifest`` rewrites it; a test keeps the two equal). A bundle's identity is the
SHA-256 of its ``manifest.json`` bytes: the manifest holds every member's hash, so two bundles with the same
digest hold the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from harness.bundle import BundleError
from harness.names import check_name

FORMAT = "spikebench-bundle"
SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
SCHEMA_FILE = Path(__file__).parent / "schema" / f"manifest-v{SCHEMA_VERSION}.json"
RUNS_DIR = "runs"
# the files a bundled run may hold (``runs/<run_id>/<file>``); the checkpoint keeps a safetensors suffix
RUN_FILES = ("spec.json", "status.json", "config.json", "metrics.jsonl", "final.json", "energy.json", "firing.json",
             "firing.md", "predictions.npy", "predictions.json", "environment.json")
CHECKPOINT_FILES = ("checkpoint.pt", "checkpoint.safetensors")
SHA256 = r"^[0-9a-f]{64}$"
RUN_ID = r"^[0-9a-f]{16}$"
MEMBER_PATH = re.compile(rf"^{RUNS_DIR}/([0-9a-f]{{16}})/([A-Za-z0-9_.-]+)$")

SiteName = Annotated[str, AfterValidator(lambda value: check_name(value, "site"))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Member(_Strict):
    """One file of the bundle: its SHA-256 and size in bytes."""

    sha256: str = Field(pattern=SHA256)
    size: int = Field(ge=0)


class Checkpoint(_Strict):
    """The weights that gave a run's predictions: always their SHA-256, the file itself only with --with-weights."""

    sha256: str = Field(pattern=SHA256)
    size: int = Field(ge=0)
    name: str = Field(description="the file's name where the run was computed")
    member: str | None = Field(None, description="its path in the bundle, null when not included")


class Code(_Strict):
    """The code that computed (or exported) the results."""

    code_fingerprint: str | None
    commit: str | None
    dirty: bool | None = None


class BundledRun(_Strict):
    """One run of the bundle; its files are the members under ``runs/<run_id>/``."""

    run_id: str = Field(pattern=RUN_ID)
    model: str
    dataset: str
    T: int
    seed: int
    variant: str | None = None
    eval_only: bool
    state: Literal["finished", "diverged"]
    code: Code
    checkpoint: Checkpoint | None
    predictions: bool = Field(description="whether the run recorded its per-image predictions")


class Manifest(_Strict):
    """``manifest.json``."""

    format: Literal["spikebench-bundle"]
    schema_version: Literal[1]
    site: SiteName
    exported_by: Code
    runs: list[BundledRun] = Field(min_length=1)
    members: dict[str, Member] = Field(description="every other member of the archive by its path")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dump(manifest: Manifest) -> bytes:
    """The canonical bytes of ``manifest`` (sorted keys): the bundle's digest is their SHA-256."""
    return (json.dumps(manifest.model_dump(mode="json"), indent=1, sort_keys=True) + "\n").encode()


def parse(data: bytes, where: str) -> Manifest:
    """``manifest.json``'s bytes as a Manifest, or a BundleError in one line naming ``where`` and the field."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise BundleError(f"{where}: not JSON ({str(err)[:120]})") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    if raw.get("format") != FORMAT:
        raise BundleError(f"{where}: format {raw.get('format')!r}; expected {FORMAT!r}")
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(f"{where}: unknown schema_version {raw.get('schema_version')!r}; this spikebench reads "
                          f"version {SCHEMA_VERSION}")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise BundleError(f"{where}: field {field}: {first['msg']}") from None
    check_consistent(manifest, where)
    return manifest


def check_consistent(manifest: Manifest, where: str) -> None:
    """Every member path is ``runs/<run_id>/<allowed file>`` of a listed run, and each run's references (its
    spec, its checkpoint member) are members."""
    run_ids = [run.run_id for run in manifest.runs]
    if len(set(run_ids)) != len(run_ids):
        raise BundleError(f"{where}: field runs: a run id is listed twice")
    for path in manifest.members:
        match = MEMBER_PATH.match(path)
        if not match or match.group(1) not in run_ids or match.group(2) not in RUN_FILES + CHECKPOINT_FILES:
            raise BundleError(f"{where}: member {path!r}: expected runs/<listed run id>/<one of "
                              f"{', '.join(RUN_FILES + CHECKPOINT_FILES)}>")
    for run in manifest.runs:
        needed = [f"{RUNS_DIR}/{run.run_id}/{name}" for name in ("spec.json", "config.json", "final.json")]
        if run.checkpoint and run.checkpoint.member:
            needed.append(run.checkpoint.member)
        if run.predictions:
            needed += [f"{RUNS_DIR}/{run.run_id}/{name}" for name in ("predictions.npy", "predictions.json")]
        for path in needed:
            if path not in manifest.members:
                raise BundleError(f"{where}: run {run.run_id}: {path} is not among the members")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``manifest.json`` (draft 2020-12), as committed in ``SCHEMA_FILE``."""
    schema = Manifest.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://spikebench/schema/bundle-manifest-v{SCHEMA_VERSION}.json",
            "title": "spikebench result bundle manifest", **schema}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.parent.mkdir(exist_ok=True)
    SCHEMA_FILE.write_text(schema_text())
    print(f"wrote {SCHEMA_FILE}")
