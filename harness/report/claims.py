"""The papers' claimed numbers (``results/paper_claims.yaml``), validated and flattened to one record per
table cell group, so every claimed value keeps its table and row."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.configfile import ConfigError, read_yaml

CLAIMS_PATH = Path(__file__).resolve().parents[2] / "results" / "paper_claims.yaml"
# The tables the report adds after the claims file's own (their names cannot be claims tables).
REPORT_TABLES = ("controlled", "other")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class Tolerance(_Strict):
    """How far a measured parameter count may sit from a claimed one (an exact count: no seeds, no interval;
    the verdicts on seed-dependent results use the suite's ``margins``)."""

    params_rel: float


class _Values(_Strict):
    model: str | None = None
    variant: str | None = None
    params_m: float | None = None
    T: int | None = None
    energy_mj: float | None = None
    top1: float | None = None
    top5: float | None = None
    input: int | None = None
    note: str | None = None
    cited: str | None = None


class _Row(_Values):
    row: str
    method: str
    paper: str | None = None   # the paper of this row (default: the table's)
    arch: str | None = None
    spiking: bool = True
    source: Literal["table", "text"] = "table"
    cells: dict[str, _Values] | None = None


# How a table is laid out: "models" (one dataset, a row per model with method, arch, input and energy: Table 1),
# "datasets" (a panel per dataset of ``datasets``: Table 2), "variants" (one dataset, a row per variant: Table 3).
Layout = Literal["models", "datasets", "variants"]


class _Table(_Strict):
    title: str
    layout: Layout
    paper: str | None = None   # the paper the table's claims come from (default: the file's ``source``)
    dataset: str | None = None
    datasets: list[str] | None = None
    input: int | None = None
    rows: list[_Row]


class _ClaimsFile(_Strict):
    source: str
    tolerance: Tolerance
    tables: dict[str, _Table]
    energy_model: dict[str, Any] = {}


class Claim(_Strict):
    """One claimed result: a (table, row, dataset) cell group of a paper table, with the zoo model measured
    against it (``model`` None: not in the zoo, a claims-only row)."""

    table: str
    row: str
    dataset: str
    method: str
    arch: str | None
    spiking: bool
    source: Literal["table", "text"]
    model: str | None
    variant: str | None
    T: int | None
    input: int | None
    params_m: float | None
    energy_mj: float | None
    top1: float | None
    top5: float | None
    note: str | None
    paper: str
    cited: str | None


@dataclass(frozen=True)
class TableInfo:
    """A paper table's title, layout and the datasets of its columns (Table 2) or of all its rows."""

    name: str
    title: str
    layout: Layout
    datasets: tuple[str, ...]


@dataclass(frozen=True)
class Claims:
    """All claims of the claims file, in the paper's row order."""

    source: str
    tolerance: Tolerance
    tables: dict[str, TableInfo]
    claims: tuple[Claim, ...]

    def of_table(self, table: str) -> list[Claim]:
        """The claims of one table, in the paper's row order."""
        if table not in self.tables:
            raise KeyError(f"no table {table!r} in the claims; known: {', '.join(self.tables)}")
        return [c for c in self.claims if c.table == table]

    def matching(self, model: str, dataset: str, T: int | None, variant: str | None) -> list[Claim]:
        """The claims that runs of this configuration measure (same model, dataset, T and variant)."""
        return list(self._by_configuration.get((model, dataset, T, variant), ()))

    @cached_property
    def _by_configuration(self) -> dict[tuple, list[Claim]]:
        """The claims by (model, dataset, T, variant), in row order: a report looks up thousands of
        configurations."""
        index: dict[tuple, list[Claim]] = {}
        for claim in self.claims:
            index.setdefault((claim.model, claim.dataset, claim.T, claim.variant), []).append(claim)
        return index


def _describe(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())


def _claim(table: str, row: str, **fields: Any) -> Claim:
    """A validated claim; one that claims neither top-1 nor params must say why in its note (a paper
    configuration whose numbers are not recorded yet stays visible in its table)."""
    try:
        claim = Claim(table=table, row=row, **fields)
    except ValidationError as err:
        raise ValueError(f"table {table!r} row {row!r}: {_describe(err)}") from None
    if claim.top1 is None and claim.params_m is None and not claim.note:
        raise ValueError(f"table {table!r} row {row!r} ({claim.dataset}): claims neither top1 nor params_m; "
                         f"expected one of them, or a note saying why the row has none")
    return claim


def _flatten(name: str, table: _Table, paper: str) -> list[Claim]:
    claims = []
    for row in table.rows:
        common = dict(method=row.method, arch=row.arch, spiking=row.spiking, source=row.source,
                      paper=row.paper or paper)
        if row.cells is not None:
            for dataset, cell in row.cells.items():
                if table.datasets is not None and dataset not in table.datasets:
                    raise ValueError(f"table {name!r} row {row.row!r}: dataset {dataset!r} is not one of the "
                                     f"table's datasets {table.datasets}")
                values = cell.model_dump()
                values["note"] = "; ".join(n for n in (row.note, cell.note) if n) or None
                values["input"] = cell.input or table.input
                values["cited"] = cell.cited or row.cited
                claims.append(_claim(name, row.row, dataset=dataset, **common, **values))
        else:
            if table.dataset is None:
                raise ValueError(f"table {name!r} row {row.row!r}: a row without per-dataset `cells` needs the "
                                 f"table's `dataset`")
            values = row.model_dump(exclude={"row", "method", "paper", "arch", "spiking", "source", "cells"})
            values["input"] = row.input or table.input
            claims.append(_claim(name, row.row, dataset=table.dataset, **common, **values))
    return claims


def load_claims(path: Path | str = CLAIMS_PATH) -> Claims:
    """Read and validate a claims file; errors name the file and the offending field."""
    path = Path(path)
    try:
        doc = _ClaimsFile.model_validate(read_yaml(path, "claims"))
    except ValidationError as err:
        raise ValueError(f"{path}: invalid claims file: {_describe(err)}") from None
    except ConfigError as err:
        raise ValueError(str(err)) from None
    reserved = sorted(set(doc.tables) & set(REPORT_TABLES))
    if reserved:
        raise ValueError(f"{path}: tables.{reserved[0]}: the name is the report's own table; expected another name")
    try:
        claims = [claim for name, table in doc.tables.items()
                  for claim in _flatten(name, table, table.paper or doc.source)]
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    tables = {name: TableInfo(name, t.title, t.layout, tuple(t.datasets or [t.dataset]))
              for name, t in doc.tables.items()}
    return Claims(doc.source, doc.tolerance, tables, tuple(claims))
