"""The paper's tables 1-3 with the measured values beside the claimed ones, plus the suite's runs that no
table row claims; written as Markdown, LaTeX and CSV under ``results/tables/<suite>/``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.report.aggregate import (BUDGET_UNKNOWN, CLAIM_ONLY, NO_CLAIM, NOT_REPRODUCED, ConfigResult, Stat,
                                      distinguishing, group_configs, verdict)
from harness.report.claims import Claim, Claims, load_claims
from harness.report.formats import (MISSING, Column, DisplayTable, Panel, fixed, mean_std, readable, to_latex,
                                    to_markdown)
from harness.report.frame import load_runs

DATASET_NAMES = {"imagenet": "ImageNet-1K", "cifar10": "CIFAR10", "cifar100": "CIFAR100",
                 "dvs128": "DVS128 Gesture", "cifar10dvs": "CIFAR10-DVS"}
TOLERANCE_MARK, BUDGET_MARK = "†", "‡"

_TOP1 = "Top-1 (%)"
_TOP1_COLUMNS = (Column("top1_paper", "paper", _TOP1), Column("top1_ours", "ours", _TOP1),
                 Column("n", "n", _TOP1), Column("delta", "Δ", _TOP1), Column("verdict", "verdict", _TOP1, "l"))
_PARAMS_COLUMNS = (Column("params_paper", "paper", "Params (M)"), Column("params_ours", "ours", "Params (M)"))
_ENERGY_COLUMNS = (Column("energy_paper", "paper", "Energy (mJ)"), Column("energy_ours", "ours", "Energy (mJ)"))
COLUMNS = {
    "table1": (Column("method", "Method", align="l"), Column("arch", "Arch", align="l"), Column("input", "Input"),
               Column("T", "T"), *_PARAMS_COLUMNS, *_ENERGY_COLUMNS, *_TOP1_COLUMNS),
    "table2": (Column("method", "Method", align="l"), *_PARAMS_COLUMNS, Column("T", "T"), *_TOP1_COLUMNS),
    "table3": (Column("method", "Attention (stages 1-2 + 3)", align="l"), *_PARAMS_COLUMNS, *_TOP1_COLUMNS),
    "other": (Column("dataset", "Dataset", align="l"), Column("method", "Model", align="l"), Column("T", "T"),
              Column("variant", "Variant", align="l"), Column("params_ours", "Params (M)"),
              Column("energy_ours", "Energy (mJ)"), Column("top1_ours", _TOP1), Column("n", "n"),
              Column("budget", "Budget", align="l")),
}
OTHER_TITLE = "Runs outside the paper's tables"
RECORD_COLUMNS = (
    "table", "row", "dataset", "method", "arch", "model", "variant", "config", "T", "input", "spiking", "source",
    "params_m_claimed", "params_m_measured", "params_verdict",
    "energy_mj_claimed", "energy_mj_mean", "energy_mj_std", "energy_verdict", "firing_rate_mean",
    "top1_claimed", "top1_mean", "top1_std", "top1_n", "top1_ci_low", "top1_ci_high", "top1_delta", "verdict",
    "top5_claimed", "top5_mean", "unfinished_runs", "budget", "run_ids", "note",
)


@dataclass(frozen=True)
class PaperTable:
    """A built table: its tidy data (one row per table line, the CSV) and its display form."""

    data: pd.DataFrame
    display: DisplayTable


def _measured(config: ConfigResult | None) -> dict[str, Any]:
    """The measured side of a table line: statistics of the configuration's finished runs."""
    if config is None:
        nothing = Stat.of([])
        return dict(top1=nothing, top5=nothing, energy=nothing, firing=nothing, params=nothing, unfinished=0,
                    budget=None, run_ids="")
    params = Stat.of([p / 1e6 for p in config.finished["params"]])
    return dict(top1=config.stat("top1"), top5=config.stat("top5"), energy=config.stat("energy_mj"),
                firing=config.stat("firing_rate"), params=params, unfinished=config.unfinished,
                budget=config.budget, run_ids=" ".join(config.finished["run_id"]))


def _record(claim: Claim | None, config: ConfigResult | None, label: str, claims: Claims,
            table: str) -> dict[str, Any]:
    """One tidy table line: where it is in the paper, what it claims, what was measured, the verdicts."""
    m = _measured(config)
    tol = claims.tolerance
    if claim is None:
        top1_verdict = params_verdict = energy_verdict = NO_CLAIM
    elif claim.model is None:
        top1_verdict = params_verdict = energy_verdict = CLAIM_ONLY
    else:
        top1_verdict = verdict(claim.top1, m["top1"], tol.top1)
        params_verdict = verdict(claim.params_m, m["params"], tol.params_rel * (claim.params_m or 0.0))
        energy_verdict = verdict(claim.energy_mj, m["energy"], tol.energy_rel * (claim.energy_mj or 0.0))
    top1_claim = claim.top1 if claim else None
    return {
        "table": table, "row": claim.row if claim else config.model,
        "dataset": claim.dataset if claim else config.dataset,
        "method": claim.method if claim else config.family, "arch": claim.arch if claim else None,
        "model": claim.model if claim else config.model,
        "variant": claim.variant if claim else config.variant, "config": label or None,
        "T": claim.T if claim else config.T, "input": claim.input if claim else None,
        "spiking": claim.spiking if claim else None, "source": claim.source if claim else None,
        "params_m_claimed": claim.params_m if claim else None, "params_m_measured": m["params"].mean,
        "params_verdict": params_verdict,
        "energy_mj_claimed": claim.energy_mj if claim else None, "energy_mj_mean": m["energy"].mean,
        "energy_mj_std": m["energy"].std, "energy_verdict": energy_verdict,
        "firing_rate_mean": m["firing"].mean,
        "top1_claimed": top1_claim, "top1_mean": m["top1"].mean, "top1_std": m["top1"].std,
        "top1_n": m["top1"].n, "top1_ci_low": m["top1"].ci_low, "top1_ci_high": m["top1"].ci_high,
        "top1_delta": None if top1_claim is None or m["top1"].mean is None else m["top1"].mean - top1_claim,
        "verdict": top1_verdict,
        "top5_claimed": claim.top5 if claim else None, "top5_mean": m["top5"].mean,
        "unfinished_runs": m["unfinished"], "budget": m["budget"], "run_ids": m["run_ids"],
        "note": claim.note if claim else None,
    }


def _claims_of(config: ConfigResult, claims: Claims) -> list[Claim]:
    return claims.matching(config.model, config.dataset, config.T, config.variant)


def table_records(table: str, claims: Claims, configs: list[ConfigResult]) -> list[dict[str, Any]]:
    """Every claim of a paper table in the paper's order, one line per configuration that measures it
    (one line with nothing measured when none does: a row never disappears)."""
    records = []
    for claim in claims.of_table(table):
        matched = [c for c in configs if claim in _claims_of(c, claims)]
        labels = distinguishing(matched)
        records += [_record(claim, config, labels[i], claims, table) for i, config in enumerate(matched)]
        if not matched:
            records.append(_record(claim, None, "", claims, table))
    return records


def other_records(claims: Claims, configs: list[ConfigResult]) -> list[dict[str, Any]]:
    """Configurations that no claim of any table covers (other datasets, T, variants or models)."""
    return [_record(None, c, "", claims, "other") for c in configs if not _claims_of(c, claims)]


def _reduced(record: dict[str, Any]) -> bool:
    return record["budget"] not in (None, BUDGET_UNKNOWN)


def _cells(record: dict[str, Any]) -> dict[str, str]:
    """The display cells of a tidy line (marks: † measured params/energy outside tolerance, ‡ reduced budget)."""
    n = record["top1_n"]
    mean, std = record["top1_mean"], record["top1_std"]
    ours = mean_std(mean, std)
    if _reduced(record) and mean is not None:
        ours += BUDGET_MARK
    method = {"table1": record["method"], "other": record["model"]}.get(record["table"], record["row"])
    if record["config"]:
        method += f" [{record['config']}]"
    unfinished = f" (+{record['unfinished_runs']} not finished)" if record["unfinished_runs"] else ""
    params_mark = TOLERANCE_MARK if record["params_verdict"] == NOT_REPRODUCED else ""  # only set when measured
    energy_mark = TOLERANCE_MARK if record["energy_verdict"] == NOT_REPRODUCED else ""
    return {
        "method": method, "arch": record["arch"] or MISSING, "dataset": dataset_name(record["dataset"]),
        "variant": record["variant"] or MISSING, "budget": record["budget"] or "full recipe",
        "input": MISSING if record["input"] is None else str(record["input"]),
        "T": MISSING if record["T"] is None else str(record["T"]),
        "params_paper": fixed(record["params_m_claimed"]),
        "params_ours": fixed(record["params_m_measured"]) + params_mark,
        "energy_paper": fixed(record["energy_mj_claimed"]),
        "energy_ours": readable(record["energy_mj_mean"]) + energy_mark,
        "top1_paper": fixed(record["top1_claimed"]), "top1_ours": ours,
        "n": MISSING if record["verdict"] == CLAIM_ONLY else f"{n}{unfinished}",
        "delta": MISSING if record["top1_delta"] is None else f"{record['top1_delta']:+.2f}",
        "verdict": record["verdict"],
    }


def dataset_name(name: str) -> str:
    """How the paper writes a dataset's name (the name itself for datasets outside the papers)."""
    return DATASET_NAMES.get(name, name)


def _claim_notes(records: list[dict[str, Any]]) -> list[str]:
    """The claims' own notes, once per row (naming the datasets when the note is not about all of them)."""
    datasets: dict[tuple[str, str], list[str]] = {}
    row_datasets: dict[str, set[str]] = {}
    for r in records:
        row_datasets.setdefault(r["row"], set()).add(r["dataset"])
        if r["note"] and r["dataset"] not in datasets.setdefault((r["row"], r["note"]), []):
            datasets[(r["row"], r["note"])].append(r["dataset"])
    notes = []
    for (row, note), where in datasets.items():
        everywhere = set(where) == row_datasets[row] and len(where) > 1
        scope = "" if everywhere else f" ({', '.join(map(dataset_name, where))})"
        notes.append(f"{row}{scope}: {note}")
    return notes


def _notes(records: list[dict[str, Any]], claims: Claims, table: str) -> tuple[str, ...]:
    tol = claims.tolerance
    if table == "other":
        notes = ["ours: mean ± std over the n finished seeds."]
    else:
        notes = [f"paper: {claims.source}. ours: mean ± std over the n finished seeds; Δ = ours − paper. "
                 f"reproduced: the paper's value lies inside the 95% t-interval of the seeds, or within "
                 f"{tol.top1:g} points of the mean."]
    if any(r["params_verdict"] == NOT_REPRODUCED or r["energy_verdict"] == NOT_REPRODUCED for r in records):
        notes.append(f"{TOLERANCE_MARK} measured parameter count (energy) differs from the paper's by more than "
                     f"{tol.params_rel:.0%} ({tol.energy_rel:.0%}).")
    notes += [f"{BUDGET_MARK} {r['row']} ({dataset_name(r['dataset'])}): reduced budget ({r['budget']}), not the "
              f"recipe's full training." for r in records if _reduced(r) and r["top1_n"]]
    if any(r["verdict"] == CLAIM_ONLY for r in records):
        notes.append(f"{CLAIM_ONLY}: a model the spikebench zoo does not have (non-spiking or not implemented).")
    return tuple(notes + _claim_notes(records))


def build_table(name: str, claims: Claims, configs: list[ConfigResult]) -> PaperTable:
    """Table ``name`` ("table1", "table2", "table3" or "other") from the configurations of a suite."""
    records = other_records(claims, configs) if name == "other" else table_records(name, claims, configs)
    data = pd.DataFrame.from_records(records, columns=list(RECORD_COLUMNS))
    if name == "table2":
        panels = tuple(Panel(dataset_name(d), tuple(_cells(r) for r in records if r["dataset"] == d))
                       for d in claims.tables[name].datasets)
    else:
        panels = (Panel(None, tuple(_cells(r) for r in records)),)
    title = OTHER_TITLE if name == "other" else claims.tables[name].title
    notes = _notes(records, claims, name) if records else ()
    return PaperTable(data, DisplayTable(name, title, COLUMNS[name], panels, notes))


def build_tables(runs: pd.DataFrame, claims: Claims) -> list[PaperTable]:
    """Tables 1-3 and the table of other runs, from a runs frame (``load_runs``)."""
    configs = group_configs(runs)
    return [build_table(name, claims, configs) for name in (*claims.tables, "other")]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "suite"


def render_tables(frame_or_uri: pd.DataFrame | str, suite_name: str | None, out_dir: Path | str) -> dict[str, Path]:
    """Write every table of a suite (all suites when None) as Markdown, LaTeX and CSV into
    ``out_dir/<suite>/``, plus ``report.md`` with all the Markdown; returns {file name: path}."""
    runs = load_runs(frame_or_uri, suite=suite_name)
    tables = build_tables(runs, load_claims())
    directory = Path(out_dir) / _slug(suite_name or "all")
    directory.mkdir(parents=True, exist_ok=True)
    finished = int((runs["state"] == "finished").sum())
    heading = (f"# spikebench report: {suite_name or 'all suites'}\n\n{len(runs)} runs logged, {finished} "
               f"finished.\n")
    outputs = {"report.md": heading + "".join("\n" + to_markdown(t.display) for t in tables)}
    for table in tables:
        outputs[f"{table.display.name}.md"] = to_markdown(table.display, level=1)
        outputs[f"{table.display.name}.tex"] = to_latex(table.display)
        outputs[f"{table.display.name}.csv"] = table.data.to_csv(index=False, float_format="%.6g",
                                                                  lineterminator="\n")
    paths = {}
    for file_name, text in outputs.items():
        paths[file_name] = directory / file_name
        paths[file_name].write_text(text)
    return paths
