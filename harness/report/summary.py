"""What ``harness run`` prints at its end: the runs it was asked for, one line per configuration (what was trained,
top-1 best and last, parameters, energy in a unit that suits its scale, the verdict or why there is none), then
where the full report and the page are. A screen, not the report: the paper tables stay in ``report.md``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from harness.report.aggregate import (BUDGET_UNKNOWN, COMPARED_TOP1, NO_CLAIM, OVERRIDE_PREFIX, ConfigResult,
                                      group_configs, short_reason)
from harness.report.claims import Claims, load_claims
from harness.report.counts import recorded_overrides, zoo_param_count
from harness.report.formats import MISSING, energy_unit, mean_std
from harness.report.frame import load_runs
from harness.report.released import eval_only_mask, released_records
from harness.suite import Margins, RunSpec

VERDICT_CHARS = 90  # a reason longer than this is cut on the terminal (report.md and the page keep it whole)


@dataclass(frozen=True)
class SummaryRow:
    """One line of the summary: a configuration's texts and its energy in mJ (scaled when the table is laid out)."""

    model: str
    dataset: str
    T: str
    params: str
    best: str
    last: str
    energy_mj: float | None
    verdict: str


def param_text(count: float | None) -> str:
    """A parameter count at a readable scale: 149.5k, 7.59M."""
    if count is None:
        return MISSING
    return f"{count / 1e3:.1f}k" if count < 1e6 else f"{count / 1e6:.2f}M"


def no_claim_reason(config: ConfigResult, claims: Claims) -> str:
    """Why a configuration has no verdict although it has results: no paper row measures it."""
    if config.overrides and config.variant is None:
        return f"{NO_CLAIM}: model changed by overrides"
    if not any(c.dataset == config.dataset for c in claims.claims):
        return f"{NO_CLAIM}: no paper reports {config.dataset}"
    return f"{NO_CLAIM} for {config.model} on {config.dataset} at T={config.T}"


def verdict_or_why(config: ConfigResult, claims: Claims, margins: Margins) -> str:
    """The top-1 verdict against the paper's claim, else why there is none (failed with its reason, no claim)."""
    if not config.seeds(COMPARED_TOP1):
        return config.outcome or "no finished run"
    matching = [c for c in claims.matching(config.model, config.dataset, config.T, config.variant)
                if c.top1 is not None]
    if not matching or (config.overrides and config.variant is None):
        return no_claim_reason(config, claims)
    return config.top1_verdict(matching[0].top1, margins.top1)


def _count(config: ConfigResult) -> float | None:
    measured = config.stat("params").mean
    if measured is not None:
        return measured
    return zoo_param_count(config.model, recorded_overrides(config.config, OVERRIDE_PREFIX))


def _row(config: ConfigResult, claims: Claims, margins: Margins) -> SummaryRow:
    best, last = config.top1_stat(), config.stat("top1")
    nan_text = "nan" if config.only_nan(COMPARED_TOP1) else MISSING
    return SummaryRow(config.model + (f" [{config.variant}]" if config.variant else ""), config.dataset,
                      str(config.T), param_text(_count(config)),
                      mean_std(best.mean, best.std) if best.n else nan_text,
                      mean_std(last.mean, last.std) if last.n else nan_text,
                      config.stat("energy_mj").mean, verdict_or_why(config, claims, margins))


def _released_row(record: dict) -> SummaryRow:
    """An eval-only configuration (released weights evaluated once): ``harness.report.released``'s line."""
    top1 = MISSING if record["top1"] is None else f"{record['top1']:.2f}"
    return SummaryRow(record["model"] + (f" [{record['variant']}]" if record["variant"] else ""),
                      record["dataset"], str(record["T"]), param_text(zoo_param_count(record["model"])), top1, top1,
                      record["energy_mj"], f"released weights: {record['verdict']}")


def _unlogged_row(spec: RunSpec, root: Path) -> SummaryRow:
    """A run the tracking store does not have (never ended, or killed): its state and reason from status.json."""
    from harness.runs import RunRecord, run_dir

    record = RunRecord(run_dir(root, spec))
    try:
        status = record.status
        state, reason = record.state, status.get("reason")
    except (OSError, ValueError) as err:
        state, reason = "corrupt", str(err)
    why = f"{state}: {short_reason(reason)}" if isinstance(reason, str) and reason.strip() else state
    return SummaryRow(spec.model + (f" [{spec.variant}]" if spec.variant else ""), spec.dataset, str(spec.T),
                      param_text(zoo_param_count(spec.model, spec.overrides)), MISSING, MISSING, None, why)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _layout(rows: list[SummaryRow]) -> list[str]:
    """The rows as aligned text columns under a header; energy in the unit that suits the column's scale."""
    unit, factor = energy_unit([r.energy_mj for r in rows])
    header = ("model", "data", "T", "params", "top-1 best", "top-1 last", f"energy ({unit})", "verdict / why none")
    cells = [(r.model, r.dataset, r.T, r.params, r.best, r.last,
              MISSING if r.energy_mj is None else f"{r.energy_mj * factor:.2f}", _cut(r.verdict, VERDICT_CHARS))
             for r in rows]
    widths = [max(len(line[i]) for line in (header, *cells)) for i in range(len(header))]
    left = {0, 1, 7}

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if i in left else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))

    return [line(header).rstrip()] + [line(c).rstrip() for c in cells]


def _budget_line(configs: list[ConfigResult]) -> str | None:
    """The reduced budgets of the rows, said once ("budget epochs=3 (all 14 rows): ...")."""
    budgets: dict[str, int] = {}
    for config in configs:
        if config.budget not in (None, BUDGET_UNKNOWN):
            budgets[config.budget] = budgets.get(config.budget, 0) + 1
    if not budgets:
        return None
    parts = [f"{budget} ({'all' if n == len(configs) else n} {'row' if n == 1 else 'rows'})"
             for budget, n in budgets.items()]
    return f"reduced budget: {'; '.join(parts)}, not the recipes' full training"


def run_summary(frame_or_uri: pd.DataFrame | str, suite: str, specs: Sequence[RunSpec], root: Path,
                report: Path, page: Path, margins: Margins = Margins(), claims: Claims | None = None) -> str:
    """The summary of the runs ``specs`` (one line per configuration; a run the store lacks from its
    status.json), then where the full report and the page are."""
    runs = load_runs(frame_or_uri, suite=suite)
    wanted = {spec.run_id for spec in specs}
    runs = runs[runs["run_id"].isin(wanted) & ~runs["imported"]]  # these ran here; an imported copy did not
    claims = claims or load_claims()
    released = eval_only_mask(runs)
    configs = group_configs(runs[~released])
    logged = set(runs["run_id"])
    rows = [_row(c, claims, margins) for c in configs]
    rows += [_released_row(r) for r in released_records(runs[released], claims, margins)]
    rows += [_unlogged_row(spec, root) for spec in specs if spec.run_id not in logged]
    lines = [f"{suite}: {len(wanted)} runs in {len(rows)} configurations", *_layout(rows)]
    budget = _budget_line(configs)
    if budget:
        lines.append(budget)
    lines.append(f"full report: {report} (every paper table: `python -m harness report <suite> --all`)")
    lines.append(f"page: {page}")
    return "\n".join(lines)

