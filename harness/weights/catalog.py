"""The released-weights catalog (``catalog.yaml`` beside this file), validated like every config file.

One entry per zoo configuration whose authors (or a secondary host, marked ``secondary``) published weights:
where the release is linked (``source``), the page of the file itself (``download_page``), the direct link when
one exists (``url``), the file name as released, its key layout (``format``), its SHA-256 when the authors publish
one, the license, notes, and how far the entry was checked (``checked``). Files live under
``<data-root>/weights/<model>/<file>`` (``<model>.pth`` when the released name is not known).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from harness.configfile import ConfigError, compose, line_of, load_yaml, read_text
from harness.names import check_name

CATALOG_PATH = Path(__file__).resolve().parent / "catalog.yaml"
CATALOG_VARIABLE = "SPIKEBENCH_WEIGHTS_CATALOG"  # a catalog file used instead of the packaged one
WEIGHTS_SUBDIR = "weights"
RELEASED = "released"  # a suite's ``weights: released``: the catalog's file of the run's model
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
MD5_PATTERN = re.compile(r"^[0-9a-f]{32}$")


class CatalogError(ConfigError):
    """The catalog file is malformed or names unknown models; the message names the file, line and field."""


def _url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("https://", "http://")):
        raise ValueError(f"{value!r}: expected an http(s) URL or null")
    return value


def _sha256(value: str | None) -> str | None:
    if value is not None and not SHA256_PATTERN.match(value):
        raise ValueError(f"{value!r}: expected 64 lowercase hex digits or null")
    return value


def _md5(value: str | None) -> str | None:
    if value is not None and not MD5_PATTERN.match(value):
        raise ValueError(f"{value!r}: expected 32 lowercase hex digits or null")
    return value


def _file_name(value: str | None) -> str | None:
    return check_name(value, "weights file name") if value is not None else None


class WeightsEntry(BaseModel):
    """One released checkpoint of one zoo configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str = Field(description="registered zoo model name")
    source: str = Field(min_length=1, description="the page that links the file (official README, release page)")
    download_page: Annotated[str | None, AfterValidator(_url)] = Field(
        None, description="the authors' link for this file (a Drive file or folder, a release page), for a browser")
    url: Annotated[str | None, AfterValidator(_url)] = Field(description="direct download link, null when none")
    file: Annotated[str | None, AfterValidator(_file_name)] = Field(
        description="the file name as released, null when it could not be established")
    format: Literal["official", "spikebench", "timm", "safetensors"] = Field(
        description="official: the official code's key layout (zoo.load_official_state_dict); spikebench: this "
                    "zoo's state dict; timm: a timm checkpoint; safetensors: a safetensors file of either layout")
    sha256: Annotated[str | None, AfterValidator(_sha256)] = Field(
        None, description="the SHA-256 the authors publish, null when they publish none")
    md5: Annotated[str | None, AfterValidator(_md5)] = Field(
        None, description="an MD5 published for the file (by whom: notes), checked on fetch and import")
    model_args: dict[str, Any] = Field(
        default_factory=dict, description="zoo constructor arguments the checkpoint needs (e.g. kd: true)")
    license: str | None = Field(None, description="the license of the weights (the repository's unless stated)")
    notes: str = ""
    checked: str = Field(min_length=1, description="how far the entry's facts were checked, and against what")
    secondary: bool = Field(False, description="hosted by a third party (e.g. a re-hosted copy), not the authors")

    @property
    def stored_name(self) -> str:
        """The name the file is stored under: as released, else ``<model>.pth`` (``.safetensors`` for that format)."""
        if self.file is not None:
            return self.file
        return f"{self.model}.safetensors" if self.format == "safetensors" else f"{self.model}.pth"


class _CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    entries: list[WeightsEntry] = []


@dataclass(frozen=True)
class Catalog:
    """The catalog's entries by model name, in file order."""

    path: Path
    entries: dict[str, WeightsEntry]

    def get(self, model: str) -> WeightsEntry:
        """The entry of ``model``; a KeyError naming the catalog when it has none."""
        if model not in self.entries:
            raise KeyError(f"{model}: no released weights in the catalog {self.path}; "
                           f"`python -m harness weights ls` lists the models that have some")
        return self.entries[model]


def load_catalog(path: Path | str = CATALOG_PATH) -> Catalog:
    """Read and validate the catalog: every model registered in the zoo, at most one entry per model, model
    arguments the model takes; each problem is one line naming the file, line and field."""
    import zoo

    path = Path(path)
    doc = load_yaml(path, _CatalogFile, "weights catalog", CatalogError)
    tree = compose(read_text(path, "weights catalog", CatalogError), path, CatalogError)
    known = set(zoo.list_models())
    entries: dict[str, WeightsEntry] = {}
    for i, entry in enumerate(doc.entries):
        problem = None
        if entry.model not in known:
            problem = "model", f"{entry.model!r} is not a registered zoo model"
        elif entry.model in entries:
            problem = "model", f"{entry.model!r} has an entry already"
        elif set(entry.model_args) - set(zoo.model_arguments(entry.model)):
            unknown = sorted(set(entry.model_args) - set(zoo.model_arguments(entry.model)))
            problem = "model_args", (f"{', '.join(unknown)} not arguments of {entry.model}; "
                                     f"valid: {', '.join(zoo.model_arguments(entry.model))}")
        if problem:
            field, message = problem
            raise CatalogError(f"{path}: line {line_of(tree, ('entries', i, field))}: field entries.{i}.{field}: "
                               f"{message}")
        entries[entry.model] = entry
    return Catalog(path, entries)


def weights_dir(data_root: Path | str, model: str) -> Path:
    """``<data-root>/weights/<model>``: where a model's released weights are stored."""
    return Path(data_root) / WEIGHTS_SUBDIR / check_name(model, "model name")


def stored_path(data_root: Path | str, entry: WeightsEntry) -> Path:
    """``<data-root>/weights/<model>/<file>``: where the catalog's file of ``entry`` is stored."""
    return weights_dir(data_root, entry.model) / entry.stored_name


def active_catalog() -> Catalog:
    """The weights catalog in use: ``$SPIKEBENCH_WEIGHTS_CATALOG`` when set (a site's own catalog, e.g. one naming a
    local mirror's URLs), else the packaged ``catalog.yaml``."""
    return load_catalog(os.environ.get(CATALOG_VARIABLE) or CATALOG_PATH)
