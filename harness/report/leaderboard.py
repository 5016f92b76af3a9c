"""The leaderboard: one self-contained static HTML page (jinja2, autoescaped) with a sortable, filterable
table per dataset of the trained runs, accuracy-vs-energy and accuracy-vs-params plots, the provenance of every
row, and the eval-only runs' "Released weights vs paper" table."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from harness.report.aggregate import (BUDGET_UNKNOWN, COMPARED_TOP1, ConfigResult, Stat,
                                      distinguishing, group_configs)
from harness.report.claims import Claim, Claims, load_claims
from harness.report.formats import MISSING, fixed, interval, is_missing, mean_std, readable
from harness.report.frame import load_runs
from harness.report.plots import Point, Scatter, scatter
from harness.report.released import eval_only_mask, released_table
from harness.report.tables import (COMPARED_EPOCH, CONTROLLED_TITLE, DATASET_NAMES, controlled, dataset_name,
                                   margin_source)
from harness.suite import Margins

TEMPLATES = Path(__file__).resolve().parent / "templates"
PER_RUN = (("best_top1", "best top-1 (%)", fixed), ("best_epoch", "best epoch", lambda v: fixed(v, 0)),
           ("top1", "last top-1 (%)", fixed), ("top5", "last top-5 (%)", fixed),
           ("energy_mj", "energy paper (mJ)", readable), ("ops_energy_mj", "energy ops (mJ)", readable),
           ("firing_rate", "firing rate", readable), ("params", "params", lambda v: fixed(v, 0)),
           ("eval_batch", "eval batch", lambda v: fixed(v, 0)),
           ("train_device_hours", "train hours", readable), ("eval_img_per_s", "eval img/s", readable))
ENVIRONMENT_TAGS = ("git_commit", "torch", "cuda", "device", "host", "slurm_job_id")


@dataclass(frozen=True)
class Cell:
    """A displayed value and the key its column sorts by ("" sorts last)."""

    text: str
    sort: str

    @classmethod
    def of(cls, text: str, value: float | str | None) -> Cell:
        return cls(text, "" if is_missing(value) else str(value))


# NeuroBench's metrics (means over the finished seeds): column key, header, how a present value is shown.
NEUROBENCH_COLUMNS = (("footprint_bytes", "Footprint (MB)", lambda v: readable(v / 1e6)),
                      ("connection_sparsity", "Connection sparsity", readable),
                      ("activation_sparsity", "Activation sparsity", readable),
                      ("effective_macs", "Effective MACs (M)", lambda v: readable(v / 1e6)),
                      ("effective_acs", "Effective ACs (M)", lambda v: readable(v / 1e6)))


def _stat_text(stat: Stat) -> str:
    return MISSING if stat.mean is None else f"{mean_std(stat.mean, stat.std)} (n={stat.n})"


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


def _provenance(config: ConfigResult) -> dict[str, Any]:
    """Everything that says where a row's numbers come from."""
    runs = []
    for _, run in config.runs.iterrows():
        metrics = [show(run[name]) for name, _, show in PER_RUN]
        started = run["start_time"]
        runs.append({"run_id": run["run_id"], "mlflow_run_id": run["mlflow_run_id"] or MISSING,
                     "seed": int(run["seed"]), "state": run["state"], "reason": run["reason"],
                     "suites": ", ".join(run["suites"]), "metrics": metrics,
                     "started": MISSING if pd.isna(started) else started.strftime("%Y-%m-%d %H:%M"),
                     "command": run["command"] or MISSING,
                     "environment": [(tag, run[tag] or MISSING) for tag in ENVIRONMENT_TAGS]})
    config_items = [("recipe", config.recipe or MISSING), ("variant", config.variant or MISSING),
                    ("budget", config.budget or "full recipe"),
                    *[(k.removeprefix("params."), v) for k, v in config.config.items()]]
    resolved = [(c.removeprefix("params."), v) for c, v in config.runs.iloc[0].items()
                if str(c).startswith("params.recipe.") and v is not None]
    return {"suites": ", ".join(config.suites), "runs": runs, "config": config_items, "resolved": resolved,
            "per_run_columns": [label for _, label, _ in PER_RUN],
            "commits": ", ".join(sorted({c for c in config.runs["git_commit"] if c})) or MISSING}


def _row(config: ConfigResult, label: str, claims: Claims, row_id: str, margins: Margins,
         with_claims: bool = True) -> dict[str, Any]:
    claim = _claim(claims, config) if with_claims else None
    top1, last = config.top1_stat(), config.stat("top1")
    energy, ops, firing = config.stat("energy_mj"), config.stat("ops_energy_mj"), config.stat("firing_rate")
    params = Stat.of([p / 1e6 for p in config.finished["params"]])
    hours, kind = config.device_hours
    claimed = claim.top1 if claim else None
    delta = None if claimed is None or top1.mean is None else top1.mean - claimed
    result = _verdict_text(config, claimed, margins.top1)
    if len(config.finished) and config.stale:
        result += " (stale: computed by other code)"
    variant = config.variant_label
    name = config.model + (f" · {variant}" if variant else "") + (f" [{label}]" if label else "")
    batch, dependent = config.eval_batch
    batch_text = MISSING if batch is None else batch + (" (batch-dependent)" if dependent else "")
    date = config.date
    day, stamp = (MISSING, None) if date is None else (date.strftime("%Y-%m-%d"), date.isoformat())
    neurobench = [Cell.of(MISSING if mean is None else show(mean), mean)
                  for key, _, show in NEUROBENCH_COLUMNS for mean in [config.stat(key).mean]]
    return {
        "id": row_id, "family": config.family or MISSING, "T": config.T, "params_m": params.mean,
        "cells": [
            Cell.of(name, name), Cell.of(config.family or MISSING, config.family),
            Cell.of(fixed(params.mean), params.mean), Cell.of(str(config.T), config.T),
            Cell.of(_stat_text(top1), top1.mean), Cell.of(interval(top1.ci_low, top1.ci_high), top1.ci_low),
            Cell.of(mean_std(last.mean, last.std), last.mean), Cell.of(fixed(claimed), claimed),
            Cell.of(MISSING if delta is None else f"{delta:+.2f}", delta), Cell.of(result, result),
            Cell.of(readable(energy.mean), energy.mean), Cell.of(readable(ops.mean), ops.mean),
            Cell.of(readable(firing.mean), firing.mean), *neurobench, Cell.of(batch_text, batch),
            Cell.of(MISSING if hours.mean is None else f"{hours.mean:.3g} {kind}-h", hours.mean),
            Cell.of(day, stamp),
        ],
        "provenance": _provenance(config),
        "points": {"energy": (energy.mean, top1.mean), "params": (params.mean, top1.mean)},
    }


def columns(margins: Margins) -> tuple[tuple[str, str, str], ...]:
    """The leaderboard's columns (key, header, sort type); the verdict header states its margin."""
    return (("model", "Model", "text"), ("family", "Family", "text"), ("params", "Params (M)", "num"),
            ("T", "T", "num"), ("top1", f"Top-1 % {COMPARED_EPOCH} (mean ± std, n)", "num"),
            ("ci", "95% CI", "num"), ("last", "Top-1 % last epoch", "num"),
            ("claimed", "Claimed top-1 %", "num"), ("delta", "Δ", "num"),
            ("verdict", f"Verdict (±{margins.top1:g} points)", "text"),
            ("energy", "Energy paper (mJ)", "num"), ("energy_ops", "Energy ops (mJ)", "num"),
            ("firing", "Firing rate", "num"), *((key, header, "num") for key, header, _ in NEUROBENCH_COLUMNS),
            ("eval_batch", "Eval batch", "num"), ("hours", "Train hours / run", "num"), ("date", "Date", "text"))


def _plots(dataset: str, rows: list[dict[str, Any]], claims: Claims, with_claims: bool) -> list[Scatter]:
    plots = []
    for axis, x_label, claim_x, unit in (("energy", "energy per image (mJ)", "energy_mj", "mJ"),
                                         ("params", "parameters (M)", "params_m", "M params")):
        points = [Point(x, y, f"{r['cells'][0].text}, T={r['T']}: {y:.2f}% at {x:.3g} {unit}", True, r["family"],
                        r["id"]) for r in rows for x, y in [r["points"][axis]] if x is not None and y is not None]
        points += [Point(getattr(c, claim_x), c.top1, f"paper: {c.row}, T={c.T}: {c.top1:.2f}% at "
                         f"{getattr(c, claim_x):.3g} {unit}", False)
                   for c in claims.claims if with_claims and c.dataset == dataset
                   and getattr(c, claim_x) is not None and c.top1 is not None]
        plot = scatter(points, f"Top-1 vs {axis}", x_label, "top-1 (%)")
        if plot is not None:
            plots.append(plot)
    return plots


def _section(index: int, dataset: str, configs: list[ConfigResult], claims: Claims, margins: Margins,
             name: str, with_claims: bool = True) -> dict[str, Any]:
    """A section of the page: a table of ``configs`` (one dataset) and its plots (with the claims' points
    when ``with_claims``)."""
    rows = []
    by_claim: dict[tuple, list[int]] = {}
    for i, config in enumerate(configs):
        by_claim.setdefault((config.model, config.T, config.variant_label), []).append(i)
    labels: dict[int, str] = {}
    for members in by_claim.values():
        for position, label in distinguishing([configs[i] for i in members]).items():
            labels[members[position]] = label
    for i, config in enumerate(configs):
        rows.append(_row(config, labels[i], claims, f"d{index}-r{i}", margins, with_claims))
    families = sorted({r["family"] for r in rows})
    return {"id": f"d{index}", "name": name, "dataset": dataset, "controlled": not with_claims, "rows": rows,
            "families": families, "Ts": sorted({r["T"] for r in rows}),
            "plots": _plots(dataset, rows, claims, with_claims),
            "family_index": {f: i for i, f in enumerate(families)}}


def build_context(runs: pd.DataFrame, claims: Claims, margins: Margins = Margins()) -> dict[str, Any]:
    """Everything the template shows, computed from a runs frame (``load_runs``), the claims and the verdicts'
    equivalence margins."""
    released = eval_only_mask(runs)
    configs = group_configs(runs[~released])
    order = [d for d in DATASET_NAMES if any(c.dataset == d for c in configs)]
    order += sorted({c.dataset for c in configs} - set(order))
    sections = [_section(i, d, [c for c in configs if c.dataset == d], claims, margins, dataset_name(d))
                for i, d in enumerate(order)]
    sections += [_section(len(sections) + i, d, [c for c in configs if c.dataset == d and controlled(c)], claims,
                          margins, f"{CONTROLLED_TITLE}: {dataset_name(d)}", with_claims=False)
                 for i, d in enumerate([d for d in order if any(c.dataset == d and controlled(c) for c in configs)])]
    papers = "; ".join(dict.fromkeys(c.paper for c in claims.claims))
    return {"sections": sections, "columns": columns(margins), "run_count": int(runs["run_id"].nunique()),
            "suites": sorted(set(runs["suite"].dropna())), "claims_source": papers,
            "margins": margins, "margin_source": margin_source(margins, "top1"), "compared_epoch": COMPARED_EPOCH,
            "released": _released(runs, claims, margins) if released.any() else None,
            "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _released(runs: pd.DataFrame, claims: Claims, margins: Margins) -> dict[str, Any]:
    """The "Released weights vs paper" table of the eval-only runs (``harness.report.released``), as text cells."""
    _, table = released_table(runs, claims, margins)
    headers = [f"{c.group}: {c.header}" if c.group else c.header for c in table.columns]
    rows = [[cells[c.key] for c in table.columns] for panel in table.panels for cells in panel.rows]
    return {"title": table.title, "headers": headers, "rows": rows, "notes": table.notes}


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
    return env.get_template("leaderboard.html.j2").render(**context, script=Markup(script), style=Markup(style),
                                                          csp=csp)


def render_leaderboard(frame_or_uri: pd.DataFrame | str, out_path: Path | str, margins: Margins = Margins()) -> Path:
    """Write the leaderboard page of every logged run (all suites) to ``out_path``; returns the path."""
    runs = load_runs(frame_or_uri)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(build_context(runs, load_claims(), margins)))
    return out
