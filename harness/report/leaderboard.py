"""The leaderboard: one self-contained static HTML page (jinja2, autoescaped) with a sortable, filterable
table per dataset of the trained runs (the latest suite's datasets first; compact columns by default, the others
one click away), accuracy-vs-energy and accuracy-vs-params plots on log axes with the paper's claims beside them,
the provenance of every row, the other suites' runs without a result folded with their reasons, and the eval-only
runs' "Released weights vs paper" table.

Runs imported from other sites (``harness import``) sit beside the local ones: a Source column and filter
(``local`` or ``<site> (imported)``), a verification badge (``verified``, ``disagreements N``, ``not verified``;
each run's verdict and date on hover), and seeds pooled per configuration, source and code fingerprint
(``harness.report.aggregate``). Both columns are shown by default once the runs come from more than one source."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from harness.bundle.origin import LOCAL_SOURCE
from harness.report.aggregate import (BUDGET_UNKNOWN, COMPARED_TOP1, OVERRIDE_PREFIX, Badge, ConfigResult,
                                      PooledRuns, Stat, distinguishing, group_configs, unique_runs)
from harness.report.claims import Claim, Claims, load_claims
from harness.report.counts import recorded_overrides, zoo_param_count
from harness.report.formats import MISSING, energy_unit, fixed, interval, is_missing, mean_std, readable
from harness.report.frame import load_runs
from harness.report.plots import Point, Scatter, scatter
from harness.report.released import eval_only_mask, released_table
from harness.report.tables import (COMPARED_EPOCH, CONTROLLED_TITLE, DATASET_NAMES, REPRODUCIBILITY, controlled,
                                   dataset_name, margin_source)
from harness.suite import Margins

TEMPLATES = Path(__file__).resolve().parent / "templates"
PER_RUN = (("best_top1", "best top-1 (%)", fixed), ("best_epoch", "best epoch", lambda v: fixed(v, 0)),
           ("top1", "last top-1 (%)", fixed), ("top5", "last top-5 (%)", fixed),
           ("energy_mj", "energy paper (mJ)", readable), ("ops_energy_mj", "energy ops (mJ)", readable),
           ("firing_rate", "firing rate", readable), ("params", "params", lambda v: fixed(v, 0)),
           ("eval_batch", "eval batch", lambda v: fixed(v, 0)),
           ("train_device_hours", "train hours", readable), ("eval_img_per_s", "eval img/s", readable))
ENVIRONMENT_TAGS = ("git_commit", "torch", "cuda", "device", "host", "slurm_job_id")
PAGE_SIZE = 50  # table rows the page shows at once; filters and sorting apply to every row


@dataclass(frozen=True)
class Cell:
    """A displayed value and the key its column sorts by ("" sorts last); a badge cell (``badge``: its state)
    shows its text as a badge with ``title`` on hover."""

    text: str
    sort: str
    badge: str = ""
    title: str = ""

    @classmethod
    def of(cls, text: str, value: float | str | None) -> Cell:
        return cls(text, "" if is_missing(value) else str(value))

    @classmethod
    def of_badge(cls, badge: Badge) -> Cell:
        return cls(badge.text, badge.text, badge.state.replace(" ", "-"), badge.title)


# NeuroBench's metrics (means over the finished seeds): column key, header, how a present value is shown.
NEUROBENCH_COLUMNS = (("footprint_bytes", "Footprint (MB)", lambda v: readable(v / 1e6)),
                      ("connection_sparsity", "Connection sparsity", readable),
                      ("activation_sparsity", "Activation sparsity", readable),
                      ("effective_macs", "Effective MACs (M)", lambda v: readable(v / 1e6)),
                      ("effective_acs", "Effective ACs (M)", lambda v: readable(v / 1e6)))


def _verdict_text(config: ConfigResult, claimed: float | None, margin: float) -> str:
    """The top-1 verdict, or what became of the runs when none finished ("diverged: reason")."""
    if config.values(COMPARED_TOP1):
        result = config.top1_verdict(claimed, margin)
        if config.budget not in (None, BUDGET_UNKNOWN):
            result += f" (reduced budget: {config.budget})"
        return result + (f" (+{config.outcome})" if config.outcome else "")
    return config.outcome or "no finished run"


def _claim(claims: Claims, config: ConfigResult) -> Claim | None:
    found = claims.matching(config.model, config.dataset, config.T, config.variant)
    return found[0] if found else None


RUN_FIELDS = ("run_id", "mlflow_run_id", "seed", "state", "reason", "verified", "verified_date", "disagreements",
              "verified_images", "suites", "start_time", "command", *(name for name, _, _ in PER_RUN),
              *ENVIRONMENT_TAGS)


def _run_entries(pooled: PooledRuns) -> list[dict[str, Any]]:
    """Every run's line of the provenance (metrics as shown, start, command, environment, verification), in the
    order of ``pooled``'s rows: computed in one pass over the columns, not per configuration."""
    entries = []
    for run in (dict(zip(RUN_FIELDS, values)) for values in zip(*(pooled.column(name) for name in RUN_FIELDS))):
        started = run["start_time"]
        entries.append({"run_id": run["run_id"], "mlflow_run_id": run["mlflow_run_id"] or MISSING,
                        "seed": int(run["seed"]), "state": run["state"], "reason": run["reason"],
                        "verified": _run_verification(run), "suites": ", ".join(run["suites"]),
                        "metrics": [show(run[name]) for name, _, show in PER_RUN],
                        "started": MISSING if pd.isna(started) else started.strftime("%Y-%m-%d %H:%M"),
                        "command": run["command"] or MISSING,
                        "environment": [(tag, run[tag] or MISSING) for tag in ENVIRONMENT_TAGS]})
    return entries


def _provenance(config: ConfigResult, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything that says where a row's numbers come from; ``entries``: ``_run_entries`` of its pooled runs."""
    config_items = [("recipe", config.recipe or MISSING), ("variant", config.variant or MISSING),
                    ("budget", config.budget or "full recipe"),
                    *[(k.removeprefix("params."), v) for k, v in config.config.items()]]
    first = config.rows.start
    resolved = [(c.removeprefix("params."), value) for c in config.pooled.columns_with("params.recipe.")
                for value in [config.pooled.column(c)[first]] if value is not None]
    return {"suites": ", ".join(config.suites), "runs": entries[config.rows], "config": config_items,
            "resolved": resolved, "source": config.source, "code": config.code_fingerprint or MISSING,
            "per_run_columns": [label for _, label, _ in PER_RUN],
            "commits": ", ".join(sorted({c for c in config.column("git_commit") if c})) or MISSING}


def _run_verification(run: dict[str, Any]) -> str:
    """One run's verification: its verdict, with the date and differing predictions once verified."""
    date = run.get("verified_date")
    if not isinstance(date, str):
        return run["verified"]
    return f"{run['verified']} on {date} ({run.get('disagreements') or 0} of {run.get('verified_images')} differ)"


def _params_m(config: ConfigResult) -> float | None:
    """Parameters (millions): the finished runs' count, else the zoo's (runs that failed have one too)."""
    measured = config.stat("params").mean
    count = measured if measured is not None else zoo_param_count(
        config.model, recorded_overrides(config.config, OVERRIDE_PREFIX))
    return None if count is None else count / 1e6


def _top1_text(config: ConfigResult, stat: Stat, metric: str) -> str:
    """A top-1 statistic; ``nan`` when the finished runs logged only NaN for it."""
    if stat.mean is None:
        return "nan" if config.only_nan(metric) else MISSING
    return mean_std(stat.mean, stat.std)


def _row(config: ConfigResult, label: str, claims: Claims, row_id: str, margins: Margins, entries: list[dict],
         with_claims: bool = True, energy_factor: float = 1.0) -> dict[str, Any]:
    claim = _claim(claims, config) if with_claims else None
    top1, last = config.top1_stat(), config.stat("top1")
    energy, ops, firing = config.stat("energy_mj"), config.stat("ops_energy_mj"), config.stat("firing_rate")
    params_m = _params_m(config)
    hours, kind = config.device_hours
    claimed = claim.top1 if claim else None
    delta = None if claimed is None or top1.mean is None else top1.mean - claimed
    result = _verdict_text(config, claimed, margins.top1)
    if config.finished_runs and config.stale:
        result += " (stale: computed by other code)"
    variant = config.variant_label
    name = config.model + (f" · {variant}" if variant else "") + (f" [{label}]" if label else "")
    batch, dependent = config.eval_batch
    batch_text = MISSING if batch is None else batch + (" (batch-dependent)" if dependent else "")
    date = config.date
    day, stamp = (MISSING, None) if date is None else (date.strftime("%Y-%m-%d"), date.isoformat())
    neurobench = [Cell.of(MISSING if mean is None else show(mean), mean)
                  for key, _, show in NEUROBENCH_COLUMNS for mean in [config.stat(key).mean]]
    claimed_params = claim.params_m if claim else None
    energy_mean, ops_mean, claimed_energy = (None if v is None else v * energy_factor
                                             for v in (energy.mean, ops.mean, claim.energy_mj if claim else None))
    top1_text = _top1_text(config, top1, COMPARED_TOP1)
    return {
        "id": row_id, "family": config.family or MISSING, "T": config.T, "params_m": params_m,
        "source": config.source,
        "cells": [
            Cell.of(name, name), Cell.of(config.source, config.source),
            Cell.of(config.family or MISSING, config.family),
            Cell.of(str(config.T), config.T), Cell.of(fixed(params_m), params_m),
            Cell.of(fixed(claimed_params), claimed_params),
            Cell.of(top1_text if top1.mean is None else f"{top1_text} (n={top1.n})", top1.mean),
            Cell.of(interval(top1.ci_low, top1.ci_high), top1.ci_low),
            Cell.of(_top1_text(config, last, "top1"), last.mean), Cell.of(fixed(claimed), claimed),
            Cell.of(MISSING if delta is None else f"{delta:+.2f}", delta), Cell.of(result, result),
            Cell.of_badge(config.verification),
            Cell.of(readable(energy_mean), energy_mean), Cell.of(readable(claimed_energy), claimed_energy),
            Cell.of(readable(ops_mean), ops_mean),
            Cell.of(readable(firing.mean), firing.mean), *neurobench, Cell.of(batch_text, batch),
            Cell.of(MISSING if hours.mean is None else f"{hours.mean:.3g} {kind}-h", hours.mean),
            Cell.of(day, stamp),
        ],
        "provenance": _provenance(config, entries),
        "points": {"energy": (energy_mean, top1.mean), "params": (params_m, top1.mean)},
    }


# The columns shown before the reader picks others: what fits a 1280 px screen and answers "did it reproduce";
# with runs from several sources, also where each row comes from and whether it was verified.
COMPACT = ("model", "T", "params", "top1", "claimed", "verdict", "energy")
MERGED_COMPACT = ("source", "verified")


def columns(margins: Margins, energy: str = "mJ", merged: bool = False) -> tuple[tuple[str, str, str, bool], ...]:
    """The leaderboard's columns (key, header, sort type, shown by default); the verdict header states its
    margin, the energy headers their unit; ``merged`` (runs from several sources) shows Source and Verified."""
    every = (("model", "Model", "text"), ("source", "Source", "text"), ("family", "Family", "text"),
             ("T", "T", "num"),
             ("params", "Params (M)", "num"), ("claimed_params", "Claimed params (M)", "num"),
             ("top1", f"Top-1 % {COMPARED_EPOCH} (mean ± std, n)", "num"),
             ("ci", "95% CI", "num"), ("last", "Top-1 % last epoch", "num"),
             ("claimed", "Claimed top-1 %", "num"), ("delta", "Δ", "num"),
             ("verdict", f"Verdict (±{margins.top1:g} points)", "text"), ("verified", "Verified", "text"),
             ("energy", f"Energy paper ({energy})", "num"), ("claimed_energy", f"Claimed energy ({energy})", "num"),
             ("energy_ops", f"Energy ops ({energy})", "num"),
             ("firing", "Firing rate", "num"), *((key, header, "num") for key, header, _ in NEUROBENCH_COLUMNS),
             ("eval_batch", "Eval batch", "num"), ("hours", "Train hours / run", "num"), ("date", "Date", "text"))
    shown = COMPACT + (MERGED_COMPACT if merged else ())
    return tuple((key, header, kind, key in shown) for key, header, kind in every)


def _claims_shown(dataset: str, claims: Claims, with_claims: bool) -> list[Claim]:
    """The paper's claims a section's plots show (and its claims table lists): its dataset's, with a top-1."""
    return [c for c in claims.claims if with_claims and c.dataset == dataset and c.top1 is not None]


def _plots(rows: list[dict[str, Any]], shown: list[Claim], unit: str, factor: float) -> list[Scatter]:
    """Top-1 against energy and against parameters, both on log axes on every section (costs span decades), so
    that a plot reads the same way wherever it is."""
    plots = []
    def claimed_energy(claim: Claim) -> float | None:
        return None if claim.energy_mj is None else claim.energy_mj * factor

    for axis, x_label, claimed_x in (("energy", f"energy per image ({unit})", claimed_energy),
                                     ("params", "parameters (M)", lambda c: c.params_m)):
        suffix = unit if axis == "energy" else "M params"
        points = [Point(x, y, f"{r['cells'][0].text}, T={r['T']}: {y:.2f}% at {x:.3g} {suffix}", True, r["family"],
                        r["id"]) for r in rows for x, y in [r["points"][axis]] if x is not None and y is not None]
        points += [Point(x, c.top1, f"paper: {c.row}, T={c.T}: {c.top1:.2f}% at {x:.3g} {suffix}", False)
                   for c in shown for x in [claimed_x(c)] if x is not None]
        plot = scatter(points, f"Top-1 vs {axis}", x_label, "top-1 (%)", log_x=True)
        if plot is not None:
            plots.append(plot)
    return plots


def _claim_rows(shown: list[Claim], factor: float) -> list[list[str]]:
    """The paper's claims of a section as table rows (row, T, params, energy, top-1): the diamonds' values."""
    return [[c.row + (f" ({c.variant})" if c.variant else ""), MISSING if c.T is None else str(c.T),
             fixed(c.params_m), readable(None if c.energy_mj is None else c.energy_mj * factor), fixed(c.top1)]
            for c in shown]


def _section(index: int, dataset: str, configs: list[ConfigResult], claims: Claims, margins: Margins,
             name: str, entries: list[dict], with_claims: bool = True, merged: bool = False) -> dict[str, Any]:
    """A section of the page: a table of ``configs`` (one dataset) and its plots (with the claims' points
    when ``with_claims``); energies in the unit that suits the section's scale; ``merged``: see ``columns``;
    ``entries``: ``_run_entries`` of the configurations' pooled runs."""
    shown = _claims_shown(dataset, claims, with_claims)
    measured = [c.stat("energy_mj").mean for c in configs]
    unit, factor = energy_unit(measured if any(m is not None for m in measured) else [c.energy_mj for c in shown])
    by_claim: dict[tuple, list[int]] = {}
    for i, config in enumerate(configs):
        by_claim.setdefault((config.model, config.T, config.variant_label), []).append(i)
    labels: dict[int, str] = {}
    for members in by_claim.values():
        for position, label in distinguishing([configs[i] for i in members]).items():
            labels[members[position]] = label
    rows = [_row(config, labels[i], claims, f"d{index}-r{i}", margins, entries, with_claims, factor)
            for i, config in enumerate(configs)]
    families = sorted({r["family"] for r in rows})
    return {"id": f"d{index}", "name": name, "dataset": dataset, "controlled": not with_claims, "rows": rows,
            "columns": columns(margins, unit, merged), "families": families, "Ts": sorted({r["T"] for r in rows}),
            "sources": sorted({r["source"] for r in rows}),
            "plots": _plots(rows, shown, unit, factor), "claims": _claim_rows(shown, factor), "energy_unit": unit,
            "family_index": {f: i for i, f in enumerate(families)}}


def _latest_suite(runs: pd.DataFrame) -> str | None:
    """The suite of the most recently started run (the one a reader just ran)."""
    dated = runs.dropna(subset=["start_time"])
    return None if dated.empty else dated.sort_values("start_time")["suite"].iloc[-1]


def _folded(config: ConfigResult, first: str | None) -> bool:
    """A configuration of other suites whose runs all failed: listed below the tables, not in them."""
    return first is not None and first not in config.suites and not config.seeds(COMPARED_TOP1)


def _folded_rows(configs: list[ConfigResult]) -> list[list[str]]:
    """The folded configurations as rows: dataset, model, T, params, suites, what happened (with the reason)."""
    return [[dataset_name(c.dataset), c.model + (f" · {c.variant_label}" if c.variant_label else ""), str(c.T),
             fixed(_params_m(c)), ", ".join(c.suites), c.outcome or "no finished run"] for c in configs]


def build_context(runs: pd.DataFrame, claims: Claims, margins: Margins = Margins(),
                  first_suite: str | None = None) -> dict[str, Any]:
    """Everything the template shows, computed from a runs frame (``load_runs``), the claims and the verdicts'
    equivalence margins. The datasets of ``first_suite`` (default: the suite of the latest run) come first;
    configurations of other suites without a result are folded into one list with their reasons."""
    released = eval_only_mask(runs)
    first = first_suite or _latest_suite(runs)
    every = group_configs(runs[~released])
    entries = _run_entries(every[0].pooled) if every else []
    sources = sorted({c.source for c in every}, key=lambda label: (label != LOCAL_SOURCE, label))
    merged = len(sources) > 1 or any(c.imported for c in every)
    configs = [c for c in every if not _folded(c, first)]
    ours = {c.dataset for c in configs if first in c.suites}
    order = [d for d in DATASET_NAMES if d in ours] + sorted(ours - set(DATASET_NAMES))
    order += [d for d in DATASET_NAMES if d not in order and any(c.dataset == d for c in configs)]
    order += sorted({c.dataset for c in configs} - set(order))
    sections = [_section(i, d, [c for c in configs if c.dataset == d], claims, margins, dataset_name(d), entries,
                         merged=merged) for i, d in enumerate(order)]
    sections += [_section(len(sections) + i, d, [c for c in configs if c.dataset == d and controlled(c)], claims,
                          margins, f"{CONTROLLED_TITLE}: {dataset_name(d)}", entries, with_claims=False,
                          merged=merged)
                 for i, d in enumerate([d for d in order if any(c.dataset == d and controlled(c) for c in configs)])]
    papers = "; ".join(dict.fromkeys(c.paper for c in claims.claims))
    return {"sections": sections, "run_count": len(unique_runs(runs)),
            "suites": sorted(set(runs["suite"].dropna())), "first_suite": first, "claims_source": papers,
            "margins": margins, "margin_source": margin_source(margins, "top1"), "compared_epoch": COMPARED_EPOCH,
            "folded": _folded_rows([c for c in every if _folded(c, first)]),
            "chooser": [(key, header, compact) for key, header, _, compact in columns(margins, merged=merged)],
            "sources": sources, "merged": merged,
            "released": _released(runs, claims, margins) if released.any() else None,
            "reproducibility": REPRODUCIBILITY,
            "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _released(runs: pd.DataFrame, claims: Claims, margins: Margins) -> dict[str, Any]:
    """The "Released weights vs paper" table of the eval-only runs (``harness.report.released``), as text cells."""
    _, table = released_table(runs, claims, margins)
    headers = [f"{c.group}: {c.header}" if c.group else c.header for c in table.columns]
    rows = [[cells[c.key] for c in table.columns] for panel in table.panels for cells in panel.rows]
    return {"title": table.title, "headers": headers, "rows": rows, "notes": table.notes}


def board_data(section: dict[str, Any]) -> dict[str, Any]:
    """A section's table as the data the page's script pages, filters and sorts (every row, whichever page shows):
    per row its id, filter values, cells (text, and the sort key where it differs) and provenance. Lists that rows
    share (a recipe, an environment) are stored once in ``shared`` and referred to by index, which keeps a page of
    thousands of rows small."""
    shared: dict[str, int] = {}
    values: list[list] = []  # the shared lists, by index (JSON lists: their text is their identity)

    def ref(value: list) -> int:
        index = shared.setdefault(json.dumps(value, separators=(",", ":")), len(shared))
        if index == len(values):
            values.append(value)
        return index

    rows = []
    for row in section["rows"]:
        cells = [_board_cell(c) for c in row["cells"]]
        p = row["provenance"]
        runs = [[r["seed"], r["run_id"], r["state"], r["reason"] or "", r["metrics"], r["started"], r["mlflow_run_id"],
                 r["command"], ref([value for _, value in r["environment"]]), r["verified"]] for r in p["runs"]]
        provenance = [p["suites"], p["commits"], runs, ref([list(kv) for kv in p["config"]]),
                      ref([list(kv) for kv in p["resolved"]]), p["source"], p["code"]]
        rows.append([row["id"], row["family"], row["T"], row["params_m"], cells, provenance, row["source"]])
    return {"rows": rows, "shared": values,
            "per_run_columns": [label for _, label, _ in PER_RUN], "environment": list(ENVIRONMENT_TAGS)}


def _board_cell(cell: Cell) -> list[Any]:
    """A cell as the page's script reads it: [text], [text, sort key] where they differ, and a badge cell
    [text, sort key, badge state, hover title]."""
    if cell.badge:
        return [cell.text, cell.sort, cell.badge, cell.title]
    return [cell.text] if cell.sort == cell.text else [cell.text, cell.sort]


def packed(data: Any) -> str:
    """``data`` as the page carries it: JSON, gzipped, in base64 (a tenth of the JSON's size: a table of 10,000 runs
    stays a few MB); the page's script unpacks it with the browser's own ``DecompressionStream``. Base64 has no
    character that could end the element or start markup."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(gzip.compress(text.encode(), compresslevel=9, mtime=0)).decode()


def unpacked(text: str) -> Any:
    """The data of ``packed``."""
    return json.loads(gzip.decompress(base64.b64decode(text)))


def page_rows(page: str) -> list[list[Any]]:
    """Every row of every table of a rendered page (``board_data``'s rows, as its script draws them): for tools and
    checks that read a page without a browser."""
    found = re.findall(r'<script type="application/gzip" class="board-data"[^>]*>([^<]*)</script>', page)
    return [row for text in found for row in unpacked(text)["rows"]]


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def render_html(context: dict[str, Any]) -> str:
    """The page: the template with autoescaping on; the inline script and style are the package's own
    files, allowed by hash in the page's Content-Security-Policy (no other script can run)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    script = (TEMPLATES / "leaderboard.js").read_text()
    style = (TEMPLATES / "leaderboard.css").read_text()
    csp = (f"default-src 'none'; script-src {_csp_hash(script)}; style-src {_csp_hash(style)}; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    tables = {section["id"]: packed(board_data(section)) for section in context["sections"]}
    return env.get_template("leaderboard.html.j2").render(**context, script=Markup(script), style=Markup(style),
                                                          csp=csp, tables=tables, page_size=PAGE_SIZE)


def render_leaderboard(frame_or_uri: pd.DataFrame | str, out_path: Path | str, margins: Margins = Margins(),
                       first_suite: str | None = None, sources: list[str] | None = None) -> Path:
    """Write the leaderboard page of every logged run (all suites; only those of ``sources`` when given, see
    ``frame.select_sources``) to ``out_path``, the datasets of ``first_suite`` (default: the latest run's
    suite) first; returns the path."""
    runs = load_runs(frame_or_uri, sources=sources)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(build_context(runs, load_claims(), margins, first_suite)))
    return out
