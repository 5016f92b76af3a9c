"""Every table of the claims file (the papers' tables) with the measured values beside the claimed ones, the
controlled comparison, the suite's runs that no table row claims, the neuron swap table (when runs swapped a
component: ``harness.report.swaps``) and (when the suite has eval-only runs) the released weights against their
papers (``harness.report.released``); written as Markdown, LaTeX and CSV under
``results/tables/<suite>/``. Trained runs fill the papers' tables, eval-only runs only the released-weights table."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from harness.report.aggregate import (BUDGET_UNKNOWN, CLAIM_ONLY, COMPARED_TOP1, NO_CLAIM, NOT_REPRODUCED,
                                      OVERRIDE_PREFIX, REPRODUCED, ConfigResult, Stat, claim_verdict,
                                      distinguishing, group_configs, unique_runs)
from harness.report.claims import REPORT_TABLES, Claim, Claims, load_claims
from harness.report.counts import recorded_overrides, variant_overrides, zoo_param_count
from harness.report.formats import (MISSING, Column, DisplayTable, Panel, energy_unit, fixed, interval,
                                    markdown_escape, mean_std, nan_or, readable, to_latex, to_markdown)
from harness.report.frame import load_runs
from harness.report.released import eval_only_mask, released_table
from harness.report.swaps import swap_table, swapped
from harness.suite import Margins
from harness.tracking import NEUROBENCH_METRICS

DATASET_NAMES = {"imagenet": "ImageNet-1K", "cifar10": "CIFAR10", "cifar100": "CIFAR100",
                 "dvs128": "DVS128 Gesture", "cifar10dvs": "CIFAR10-DVS"}
TOLERANCE_MARK, BUDGET_MARK, BATCH_MARK, STALE_MARK = "†", "‡", "§", "¶"
COMPARED_EPOCH = "best epoch"
NAMED_ROWS = 3  # a note names at most this many rows, else counts them
# What a reader may expect to get again (README "Reproducibility" has the measurements behind it).
REPRODUCIBILITY = (
    "A run id (model, data, recipe, seed, T, budget and CPU threads) gives the same numbers to the last digit "
    "when rerun on the same CPU model with the same torch build and code, whichever launcher runs it. Other thread "
    "counts give other numbers (3-epoch smoke runs: best top-1 82.73% / 81.62%, 98.05% / 96.94% with 1 / 2 "
    "threads), and so do other CPU models: PyTorch picks different SIMD kernels (AVX2, AVX-512, AMX), which round "
    "differently, and training amplifies the differences. Compare numbers measured on the same machine type and "
    "thread count; README, \"Reproducibility\", has the measurements.")
OTHER_TITLE = "Runs outside the paper's tables"
# The suite whose runs compare every family at a matched size under one recipe (suites/controlled.yaml).
CONTROLLED_SUITE = "controlled"
CONTROLLED_TITLE = "Controlled comparison: every family at a matched size, one recipe"
# Per-image means over the finished seeds, carried by the CSV beside the headline energy.
ENERGY_DETAILS = ("first_layer_macs", "sops", "firing_rate", "ops_macs", "ops_acs", "ops_firing_rate",
                  *NEUROBENCH_METRICS)
RECORD_COLUMNS = (
    "table", "row", "dataset", "method", "arch", "model", "variant", "config", "T", "input", "spiking", "source",
    "params_m_claimed", "params_m_measured", "params_verdict",
    "energy_mj_claimed", "energy_mj_mean", "energy_mj_std", "energy_mj_ci_low", "energy_mj_ci_high",
    "energy_margin_mj", "energy_verdict", "ops_energy_mj_mean", "energy_images",
    *(f"{name}_mean" for name in ENERGY_DETAILS),
    "top1_compared", "top1_claimed", "top1_best_mean", "top1_best_std", "top1_n", "top1_n_test",
    "top1_ci_low", "top1_ci_high",
    "top1_margin", "top1_delta", "verdict", "best_epochs", "top1_last_mean", "top1_last_std",
    "top5_claimed", "top5_last_mean", "eval_batch", "batch_dependent", "stale",
    "unfinished_runs", "outcome", "budget", "run_ids", "note", "paper", "cited", "run_source", "verified",
)
# Shown once the runs come from several sources (imported ones among them): where a line's runs come from.
SOURCE_COLUMNS = (Column("run_source", "Source", align="l"), Column("verified", "Verified", align="l"))


def columns(layout: str, margins: Margins, unit: str = "mJ") -> tuple[Column, ...]:
    """The displayed columns of a table laid out as ``layout`` (a claims table's layout, "controlled" or
    "other"); the verdict headers state their margins, the energy headers of the report's own tables ``unit``
    (the paper tables stay in the papers' mJ)."""
    top1 = "Top-1 (%)"
    top1_columns = (Column("top1_paper", "paper", top1), Column("top1_ours", "ours", top1),
                    Column("top1_last", "last", top1), Column("n", "n", top1),
                    Column("top1_ci", "95% CI", top1), Column("delta", "Δ", top1),
                    Column("verdict", f"verdict (±{margins.top1:g})", top1, "l"))
    params = (Column("params_paper", "paper", "Params (M)"), Column("params_ours", "ours", "Params (M)"))
    energy = "Energy (mJ)"
    energy_columns = (Column("energy_paper", "paper", energy), Column("energy_ours", "ours", energy),
                      Column("energy_ci", "95% CI", energy), Column("energy_ops", "ops", energy),
                      Column("energy_verdict", f"verdict (±{margins.energy:.0%})", energy, "l"))
    eval_batch = Column("eval_batch", "Eval batch")
    return {
        "models": (Column("method", "Method", align="l"), Column("arch", "Arch", align="l"), Column("input", "Input"),
                   Column("T", "T"), *params, *energy_columns, *top1_columns, eval_batch),
        "datasets": (Column("method", "Method", align="l"), *params, Column("T", "T"), *top1_columns, eval_batch),
        "variants": (Column("method", "Attention (stages 1-2 + 3)", align="l"), *params, *top1_columns, eval_batch),
        "controlled": (Column("dataset", "Dataset", align="l"), Column("family", "Family", align="l"),
                       Column("method", "Model", align="l"), Column("params_ours", "Params (M)"),
                       Column("top1_ours", "Top-1 (%) best"), Column("n", "n"), Column("top1_ci", "95% CI"),
                       Column("energy_ours", f"Energy ({unit}) paper"), Column("energy_ci", "Energy 95% CI"),
                       Column("energy_ops", f"Energy ({unit}) ops"), eval_batch, Column("budget", "Budget", align="l")),
        "other": (Column("dataset", "Dataset", align="l"), Column("method", "Model", align="l"), Column("T", "T"),
                  Column("variant", "Variant", align="l"), Column("params_ours", "Params (M)"),
                  Column("energy_ours", f"Energy ({unit}) paper"), Column("energy_ops", f"Energy ({unit}) ops"),
                  Column("top1_ours", "Top-1 (%) best"), Column("top1_last", "Top-1 (%) last"),
                  Column("n", "n"), Column("top1_ci", "95% CI"), eval_batch, Column("budget", "Budget", align="l")),
    }[layout]


@dataclass(frozen=True)
class PaperTable:
    """A built table: its tidy data (one row per table line, the CSV) and its display form."""

    data: pd.DataFrame
    display: DisplayTable


def _stat(config: ConfigResult | None, metric: str) -> Stat:
    return config.stat(metric) if config is not None else Stat.of([])


def _mean(config: ConfigResult | None, stat: Stat, metric: str) -> float | None:
    """A statistic's mean; NaN (shown as ``nan``) when the finished runs logged only NaN for the metric."""
    if stat.mean is None and config is not None and config.only_nan(metric):
        return math.nan
    return stat.mean


def _params_m(claim: Claim | None, config: ConfigResult | None) -> float | None:
    """Parameters (millions): the runs' measured count, else the zoo's count of the same model (known without
    training: runs that failed or never ran have it too)."""
    measured = _stat(config, "params").mean
    if measured is not None:
        return measured / 1e6
    if config is not None:
        count = zoo_param_count(config.model, recorded_overrides(config.config, OVERRIDE_PREFIX))
    elif claim is not None and claim.model is not None:
        overrides = variant_overrides().get((claim.model, claim.variant), {}) if claim.variant else {}
        count = zoo_param_count(claim.model, overrides)
    else:
        count = None
    return None if count is None else count / 1e6


def _params_verdict(claim: float | None, measured: float | None, relative: float) -> str:
    """A parameter count is exact: it reproduces the claim when within ``relative`` of it."""
    if claim is None:
        return NO_CLAIM
    if measured is None:
        return claim_verdict(claim, [], 0.0)
    return REPRODUCED if abs(measured - claim) <= relative * claim else NOT_REPRODUCED


def _measured(config: ConfigResult | None) -> dict[str, Any]:
    """The measured side of a table line, from the configuration's finished runs (nothing without one)."""
    if config is None:
        return {"best_epochs": None, "eval_batch": None, "batch_dependent": None, "stale": None, "unfinished_runs": 0,
                "outcome": None, "budget": None, "run_ids": "", "run_source": None, "verified": None}
    eval_batch, dependent = config.eval_batch
    epochs = config.values("best_epoch")
    return {"best_epochs": " ".join(str(int(e)) for e in epochs) or None, "eval_batch": eval_batch,
            "batch_dependent": dependent if eval_batch is not None else None,
            "stale": config.stale if config.finished_runs else None,
            "unfinished_runs": config.unfinished, "outcome": config.outcome or None, "budget": config.budget,
            "run_ids": " ".join(config.finished_column("run_id")), "run_source": config.source,
            "verified": config.verification.text}


def _verdicts(claim: Claim | None, config: ConfigResult | None, claims: Claims,
              margins: Margins) -> dict[str, Any]:
    """The three verdicts of a line (top-1 and energy: equivalence tests; params: a tolerance) and margins."""
    energy_margin = None if claim is None or claim.energy_mj is None else margins.energy * claim.energy_mj
    if claim is None or claim.model is None:
        label = NO_CLAIM if claim is None else CLAIM_ONLY
        return {"verdict": label, "params_verdict": label, "energy_verdict": label, "energy_margin_mj": energy_margin}
    energy = (config.claim_verdict("energy_mj", claim.energy_mj, energy_margin or 0.0) if config is not None
              else claim_verdict(claim.energy_mj, [], energy_margin or 0.0))
    return {
        "verdict": (config.top1_verdict(claim.top1, margins.top1) if config is not None
                    else claim_verdict(claim.top1, [], margins.top1)),
        "params_verdict": _params_verdict(claim.params_m, _params_m(claim, config), claims.tolerance.params_rel),
        "energy_verdict": _why_none(config) or energy,
        "energy_margin_mj": energy_margin,
    }


def _why_none(config: ConfigResult | None) -> str | None:
    """What became of a configuration's runs when none has a result ("3 failed: reason"), else None."""
    if config is None or config.seeds(COMPARED_TOP1):
        return None
    return config.outcome or None


def _record(claim: Claim | None, config: ConfigResult | None, label: str, claims: Claims, table: str,
            margins: Margins) -> dict[str, Any]:
    """One tidy table line: where it is in the paper, what it claims, what was measured, the verdicts."""
    best = config.top1_stat() if config is not None else Stat.of([])
    last, energy = _stat(config, "top1"), _stat(config, "energy_mj")
    top1_claim = claim.top1 if claim else None
    return {
        "table": table, "row": claim.row if claim else config.model,
        "dataset": claim.dataset if claim else config.dataset,
        "method": claim.method if claim else config.family, "arch": claim.arch if claim else None,
        "model": claim.model if claim else config.model,
        "variant": claim.variant if claim else config.variant_label, "config": label or None,
        "T": claim.T if claim else config.T, "input": claim.input if claim else None,
        "spiking": claim.spiking if claim else None, "source": claim.source if claim else None,
        "params_m_claimed": claim.params_m if claim else None,
        "params_m_measured": _params_m(claim, config),
        "energy_mj_claimed": claim.energy_mj if claim else None, "energy_mj_mean": energy.mean,
        "energy_mj_std": energy.std, "energy_mj_ci_low": energy.ci_low, "energy_mj_ci_high": energy.ci_high,
        "ops_energy_mj_mean": _stat(config, "ops_energy_mj").mean,
        "energy_images": _stat(config, "energy_images").mean,
        **{f"{name}_mean": _stat(config, name).mean for name in ENERGY_DETAILS},
        "top1_compared": COMPARED_EPOCH, "top1_claimed": top1_claim,
        "top1_best_mean": _mean(config, best, COMPARED_TOP1),
        "top1_best_std": best.std, "top1_n": best.n, "top1_n_test": None if config is None else config.n_test,
        "top1_ci_low": best.ci_low, "top1_ci_high": best.ci_high,
        "top1_margin": margins.top1,
        "top1_delta": None if top1_claim is None or best.mean is None else best.mean - top1_claim,
        "top1_last_mean": _mean(config, last, "top1"), "top1_last_std": last.std,
        "top5_claimed": claim.top5 if claim else None, "top5_last_mean": _stat(config, "top5").mean,
        "note": claim.note if claim else None, "paper": claim.paper if claim else None,
        "cited": claim.cited if claim else None,
        **_verdicts(claim, config, claims, margins), **_measured(config),
    }


def _claims_of(config: ConfigResult, claims: Claims) -> list[Claim]:
    """The claims a configuration measures; a model changed by overrides outside a named variant (a shrunk
    model) measures none."""
    if config.overrides and config.variant is None:
        return []
    return claims.matching(config.model, config.dataset, config.T, config.variant)


def table_records(table: str, claims: Claims, configs: list[ConfigResult],
                  margins: Margins = Margins()) -> list[dict[str, Any]]:
    """Every claim of a paper table in the paper's order, one line per configuration that measures it
    (one line with nothing measured when none does: a row never disappears)."""
    measuring: dict[int, list[ConfigResult]] = {}  # claims found once per configuration, not once per claim
    for config in configs:
        for claim in _claims_of(config, claims):
            measuring.setdefault(id(claim), []).append(config)
    records = []
    for claim in claims.of_table(table):
        matched = measuring.get(id(claim), [])
        labels = distinguishing(matched)
        records += [_record(claim, config, labels[i], claims, table, margins) for i, config in enumerate(matched)]
        if not matched:
            records.append(_record(claim, None, "", claims, table, margins))
    return records


def controlled(config: ConfigResult) -> bool:
    """Whether a configuration belongs to the controlled comparison (a run of the controlled suite)."""
    return CONTROLLED_SUITE in config.suites


def _dataset_order(dataset: str) -> tuple[int, str]:
    names = list(DATASET_NAMES)
    return (names.index(dataset) if dataset in names else len(names), dataset)


def controlled_records(claims: Claims, configs: list[ConfigResult],
                       margins: Margins = Margins()) -> list[dict[str, Any]]:
    """The controlled comparison: one line per family and dataset (datasets in the papers' order)."""
    chosen = sorted((c for c in configs if controlled(c)),
                    key=lambda c: (_dataset_order(c.dataset), c.family or "", c.model))
    return [_record(None, c, "", claims, "controlled", margins) for c in chosen]


def other_records(claims: Claims, configs: list[ConfigResult], margins: Margins = Margins()) -> list[dict[str, Any]]:
    """Configurations that no claim of any table covers (other datasets, T, variants, models or overrides),
    outside the controlled comparison and the neuron swap table."""
    return [_record(None, c, "", claims, "other", margins) for c in configs
            if not _claims_of(c, claims) and not controlled(c) and not swapped(c)]


def _reduced(record: dict[str, Any]) -> bool:
    return record["budget"] not in (None, BUDGET_UNKNOWN)


def _cells(record: dict[str, Any], layout: str, factor: float = 1.0) -> dict[str, str]:
    """The display cells of a tidy line (marks: † measured params outside tolerance, ‡ reduced budget,
    § batch-dependent result, ¶ stale: computed by other code)."""
    ours = nan_or(record["top1_best_mean"], lambda: mean_std(record["top1_best_mean"], record["top1_best_std"]))
    if _reduced(record) and record["top1_best_mean"] is not None:
        ours += BUDGET_MARK
    if record["stale"]:
        ours += STALE_MARK
    method = {"models": record["method"], "other": record["model"], "controlled": record["model"]}.get(
        layout, record["row"])
    if record["config"]:
        method += f" [{record['config']}]"
    shown = record["outcome"] and record["outcome"] not in (record["verdict"], record["energy_verdict"])
    outcome = f" (+{record['outcome']})" if shown else ""
    params_mark = TOLERANCE_MARK if record["params_verdict"] == NOT_REPRODUCED else ""  # only set when measured
    batch = record["eval_batch"] or MISSING

    def scaled(*keys: str) -> list[float | None]:
        return [None if record[k] is None else record[k] * factor for k in keys]

    return {
        "method": method, "family": record["method"] or MISSING, "arch": record["arch"] or MISSING,
        "dataset": dataset_name(record["dataset"]),
        "variant": record["variant"] or MISSING, "budget": record["budget"] or "full recipe",
        "input": MISSING if record["input"] is None else str(record["input"]),
        "T": MISSING if record["T"] is None else str(record["T"]),
        "params_paper": fixed(record["params_m_claimed"]),
        "params_ours": fixed(record["params_m_measured"]) + params_mark,
        "energy_paper": fixed(record["energy_mj_claimed"]),
        "energy_ours": mean_std(*scaled("energy_mj_mean", "energy_mj_std"), readable),
        "energy_ci": interval(*scaled("energy_mj_ci_low", "energy_mj_ci_high"), readable),
        "energy_ops": readable(*scaled("ops_energy_mj_mean")),
        "energy_verdict": record["energy_verdict"],
        "top1_paper": fixed(record["top1_claimed"]), "top1_ours": ours,
        "top1_last": nan_or(record["top1_last_mean"], lambda: mean_std(record["top1_last_mean"],
                                                                        record["top1_last_std"])),
        "top1_ci": interval(record["top1_ci_low"], record["top1_ci_high"]),
        "n": MISSING if record["verdict"] == CLAIM_ONLY else f"{record['top1_n']}{outcome}",
        "delta": MISSING if record["top1_delta"] is None else f"{record['top1_delta']:+.2f}",
        "verdict": record["verdict"],
        "eval_batch": batch + (BATCH_MARK if record["batch_dependent"] else ""),
        "run_source": record["run_source"] or MISSING, "verified": record["verified"] or MISSING,
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


def _controlled_note(configs: list[ConfigResult]) -> str:
    """What the controlled comparison holds fixed, as its runs recorded it (recipe and T per dataset)."""
    setups = {}
    for c in configs:
        setups.setdefault(dataset_name(c.dataset), set()).add(f"recipe {c.recipe}, T={c.T}")
    fixed_setup = "; ".join(f"{d}: {', '.join(sorted(s))}" for d, s in setups.items())
    return (f"Every family at a matched size (model overrides) under one recipe and T per dataset, so that "
            f"architecture is the only difference ({fixed_setup}); no paper makes this comparison, so no claims.")


def _sources(records: list[dict[str, Any]]) -> list[str]:
    """Where in its paper each row's claims are printed (rows that say so), once per place."""
    rows: dict[str, list[str]] = {}
    for r in records:
        if r["cited"] and r["row"] not in rows.setdefault(r["cited"], []):
            rows[r["cited"]].append(r["row"])
    return [f"Source of {', '.join(names)}: {cited}." for cited, names in rows.items()]


def _notes(records: list[dict[str, Any]], claims: Claims, table: str, margins: Margins,
           configs: list[ConfigResult]) -> tuple[str, ...]:
    best = (f"ours: the {COMPARED_EPOCH}'s top-1, mean ± std over the n finished seeds, as the papers report it "
            "(their training scripts - timm train.py for CIFAR, the ImageNet and DVS scripts - log the best "
            "epoch's accuracy); last: the final epoch's; 95% CI: the t-interval of the mean, never narrower than "
            "the 95% sampling error of a top-1 on the evaluation images (binomial, 1.96 sqrt(p(1 - p) / n_test); "
            "the seeds share those images, so it does not shrink with their number).")
    if table == "controlled":
        notes = [_controlled_note(configs), best]
    elif table == "other":
        notes = [best]
    else:
        papers = "; ".join(dict.fromkeys(r["paper"] for r in records if r["paper"]))
        notes = [f"paper: {papers}. {best} Δ = ours − paper. Verdicts are equivalence tests: reproduced "
                 f"when the 95% CI lies inside paper ± margin, not reproduced when it lies wholly outside, "
                 f"inconclusive otherwise; single run: one seed, which has no interval. A diverged seed is counted "
                 f"(\"1 of 3 seeds diverged\") and keeps the others from reproducing the claim.",
                 _margins_note(margins)]
    if any(r["energy_mj_mean"] is not None or r["ops_energy_mj_mean"] is not None for r in records):
        notes.append("Energy per image: ours in the papers' convention (MSViT Eq. 18: encoding layer once at "
                     "4.6 pJ/MAC, spiking layers at 0.9 pJ/AC x firing rate x T); ops: every operation as executed.")
    if any(r["params_verdict"] == NOT_REPRODUCED for r in records):
        notes.append(f"{TOLERANCE_MARK} measured parameter count differs from the paper's by more than "
                     f"{claims.tolerance.params_rel:.0%}.")
    notes += _budget_notes(records)
    if any(r["batch_dependent"] for r in records):
        notes.append(f"{BATCH_MARK} batch-dependent: the model's eval output depends on the batch it is evaluated "
                     f"in (the samples of a batch are coupled), so the result holds at the eval batch shown.")
    if any(r["stale"] for r in records):
        notes.append(f"{STALE_MARK} stale: computed by other code than this checkout's (its code fingerprint "
                     f"differs); `python -m harness run` recomputes it.")
    if any(r["verdict"] == CLAIM_ONLY for r in records):
        notes.append(f"{CLAIM_ONLY}: a model the spikebench zoo does not have (non-spiking or not implemented).")
    return tuple(notes + _sources(records) + _claim_notes(records))


def _budget_notes(records: list[dict[str, Any]]) -> list[str]:
    """One note per reduced budget, naming its rows (counting them when there are many)."""
    rows: dict[str, list[str]] = {}
    for r in records:
        if _reduced(r) and r["top1_n"]:
            rows.setdefault(r["budget"], []).append(f"{r['row']} ({dataset_name(r['dataset'])})")
    notes = []
    for budget, names in rows.items():
        which = ", ".join(names) if len(names) <= NAMED_ROWS else f"{len(names)} rows"
        notes.append(f"{BUDGET_MARK} reduced budget ({budget}), not the recipe's full training: {which}.")
    return notes


def margin_source(margins: Margins, field: str) -> str:
    """Where a verdict margin comes from: the suite's ``margins:`` section or, when it sets none, the default."""
    return (f"the suite's margins.{field}" if field in margins.model_fields_set
            else f"the default: the suite sets no margins.{field}")


def _margins_note(margins: Margins) -> str:
    """The verdicts' margins and where each comes from."""
    return (f"Margins: top-1 ±{margins.top1:g} points ({margin_source(margins, 'top1')}), energy "
            f"±{margins.energy:.0%} of the claim ({margin_source(margins, 'energy')}).")


def _layout(name: str, claims: Claims) -> str:
    return name if name in REPORT_TABLES else claims.tables[name].layout


def build_table(name: str, claims: Claims, configs: list[ConfigResult], margins: Margins = Margins()) -> PaperTable:
    """Table ``name`` (a table of the claims file, "controlled" or "other") from the configurations of a
    suite, laid out as the claims file says (a panel per dataset for the "datasets" layout)."""
    if name == "other":
        records, title = other_records(claims, configs, margins), OTHER_TITLE
    elif name == "controlled":
        records, title = controlled_records(claims, configs, margins), CONTROLLED_TITLE
    else:
        records, title = table_records(name, claims, configs, margins), claims.tables[name].title
    layout = _layout(name, claims)
    data = pd.DataFrame.from_records(records, columns=list(RECORD_COLUMNS))
    unit, factor = energy_unit(r["energy_mj_mean"] for r in records) if name in REPORT_TABLES else ("mJ", 1.0)
    if layout == "datasets":
        panels = tuple(Panel(dataset_name(d), tuple(_cells(r, layout) for r in records if r["dataset"] == d))
                       for d in claims.tables[name].datasets)
    else:
        panels = (Panel(None, tuple(_cells(r, layout, factor) for r in records)),)
    chosen = [c for c in configs if controlled(c)] if name == "controlled" else configs
    notes = _notes(records, claims, name, margins, chosen) + _source_notes(configs) if records else ()
    shown = columns(layout, margins, unit) + (SOURCE_COLUMNS if merged(configs) else ())
    return PaperTable(data, DisplayTable(name, title, shown, panels, notes))


def merged(configs: list[ConfigResult]) -> bool:
    """Whether the runs come from more than one source, or from an imported one."""
    return len({c.source for c in configs}) > 1 or any(c.imported for c in configs)


def _source_notes(configs: list[ConfigResult]) -> tuple[str, ...]:
    """With runs from several sources: what Source and Verified say and how seeds are pooled."""
    if not merged(configs):
        return ()
    return ("Source: local, runs of this results directory; <site> (imported), runs imported with `harness import`. "
            "Seeds are pooled only across runs of one configuration, one source and one code fingerprint: a "
            "configuration computed by other code is a separate line (code=<fingerprint>). Verified: `harness "
            "verify` re-evaluated every finished run's checkpoint and its predictions matched the recorded ones; "
            "disagreements N: N predictions differed; not verified: not (all) re-evaluated.",)


def build_tables(runs: pd.DataFrame, claims: Claims, margins: Margins = Margins()) -> list[PaperTable]:
    """Every table of the claims file, in its order, then the controlled comparison and the other runs, and the
    neuron swap table when a run swapped a component, from a runs frame (``load_runs``)."""
    configs = group_configs(runs)
    tables = [build_table(name, claims, configs, margins) for name in (*claims.tables, *REPORT_TABLES)]
    if any(swapped(c) for c in configs):
        tables.append(PaperTable(*swap_table(configs, margins)))
    return tables


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "suite"


def has_runs(table: PaperTable) -> bool:
    """Whether any line of a table was measured (a run of it finished, diverged or failed); every line of the
    released-weights table is an evaluated configuration."""
    data = table.data
    if data.empty or "top1_n" not in data:
        return not data.empty
    return bool(((data["top1_n"].fillna(0) > 0) | (data["unfinished_runs"].fillna(0) > 0)).any())


def _table_label(titles: list[str]) -> str:
    """"Tables 1-3" for the paper's numbered tables (their titles start "Table N:"), else the titles."""
    numbers = [t.split(":")[0].removeprefix("Table ").strip() for t in titles]
    if not all(n.isdigit() for n in numbers):
        return "; ".join(titles)
    values = [int(n) for n in numbers]
    if len(values) == 1:
        return f"Table {values[0]}"
    consecutive = values == list(range(values[0], values[0] + len(values)))
    return "Tables " + (f"{values[0]}-{values[-1]}" if consecutive else ", ".join(map(str, values)))


def _once(tables: list[PaperTable]) -> list[DisplayTable]:
    """The tables' display forms with each note kept only where it first appears (one report, one footnote)."""
    seen: set[str] = set()
    shown = []
    for table in tables:
        notes = tuple(n for n in table.display.notes if n not in seen)
        seen.update(notes)
        shown.append(replace(table.display, notes=notes))
    return shown


def report_markdown(title: str, runs: pd.DataFrame, tables: list[PaperTable], all_tables: bool = False) -> str:
    """The full report: the tables with at least one run (every table with ``all_tables``), one line for the
    others, each note once, and the reproducibility statement."""
    shown = [t for t in tables if all_tables or has_runs(t)]
    hidden = [t for t in tables if not (all_tables or has_runs(t)) and len(t.data)]
    finished = int((runs["state"] == "finished").sum())
    logged = unique_runs(runs)
    sources = sorted(set(logged["source_label"]))
    from_sources = (f" Sources: {markdown_escape(', '.join(sources))}." if len(sources) > 1 or logged["imported"].any()
                    else "")
    lines = [f"# spikebench report: {markdown_escape(title)}\n\n{len(logged)} runs logged, "
             f"{finished} finished.{from_sources}\n"]
    if hidden:
        rows = sum(len(t.data) for t in hidden)
        lines.append(f"{_table_label([t.display.title for t in hidden])}: {rows} rows not run; see "
                     f"`python -m harness report <suite file> --all`.\n")
    lines += ["\n" + to_markdown(display) for display in _once(shown)]
    lines.append(f"\n## Reproducibility\n\n{markdown_escape(REPRODUCIBILITY)}\n")
    return "".join(lines)


def render_tables(frame_or_uri: pd.DataFrame | str, suite_name: str | None, out_dir: Path | str,
                  margins: Margins = Margins(), all_tables: bool = False,
                  sources: list[str] | None = None) -> dict[str, Path]:
    """Write every table of a suite (all suites when None) as Markdown, LaTeX and CSV into
    ``out_dir/<suite>/``, plus ``report.md`` (``report_markdown``: the tables with runs, every table with
    ``all_tables``); returns {file name: path}. ``margins``: the suite's equivalence margins of the verdicts;
    ``sources``: only the runs of these sources (``frame.select_sources``)."""
    runs = load_runs(frame_or_uri, suite=suite_name, sources=sources)
    claims = load_claims()
    released = eval_only_mask(runs)
    tables = build_tables(runs[~released], claims, margins)
    if released.any():
        tables.append(PaperTable(*released_table(runs, claims, margins)))
    directory = Path(out_dir) / _slug(suite_name or "all")
    directory.mkdir(parents=True, exist_ok=True)
    outputs = {"report.md": report_markdown(suite_name or "all suites", runs, tables, all_tables)}
    for table in tables:
        outputs[f"{table.display.name}.md"] = to_markdown(table.display, level=1)
        outputs[f"{table.display.name}.tex"] = to_latex(table.display)
        outputs[f"{table.display.name}.csv"] = table.data.to_csv(index=False, float_format="%.10g",
                                                                  lineterminator="\n")
    paths = {}
    for file_name, text in outputs.items():
        paths[file_name] = directory / file_name
        paths[file_name].write_text(text)
    return paths
