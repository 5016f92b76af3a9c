"""The "Released weights vs paper" table: what a paper's released checkpoint measures (eval-only runs) beside what
the paper prints, with a verdict that fits a single deterministic evaluation.

An eval-only run has no seed variance: its top-1 is one evaluation of fixed weights on the N images of the split.
Its uncertainty as an estimate of the checkpoint's accuracy on the split's distribution is the sampling error of a
proportion over N images, so the verdict uses the 95% Wilson score interval of top-1 (binomial, N = the images
evaluated) in place of the t-interval over seeds: "reproduced" when it lies inside paper ± margin, "not reproduced"
when it lies wholly outside, "inconclusive" otherwise.

The implied firing rate is the one rate that, put into Eq. 18 (MSViT App. C) for every spiking layer with the
model's own per-layer FLOPs, gives the paper's printed energy:

    E_paper = 4.6 pJ x FLOPs_enc + 0.9 pJ x fr x sum_l T_l x FLOPs_l
    fr_implied = (E_paper - 4.6 pJ x FLOPs_enc) / (0.9 pJ x sum_l T_l x FLOPs_l)

with FLOPs_enc the encoding layer's FLOPs once per image and sum_l T_l x FLOPs_l the dense spiking-layer FLOPs over
their time steps (``dense_sops``), both measured by the run. Set beside the firing rate measured on the released
weights, it says whether the printed energy can follow from the network's real activity.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.report.aggregate import (INCONCLUSIVE, NO_CLAIM, NOT_REPRODUCED, NOT_RUN, REPRODUCED,
                                      ConfigResult, group_configs)
from harness.report.claims import Claim, Claims
from harness.report.formats import MISSING, Column, DisplayTable, Panel, fixed, interval, readable
from harness.suite import Margins

RELEASED_TABLE = "released"
RELEASED_TITLE = "Released weights vs paper"
Z_95 = 1.959963984540054
RECORD_COLUMNS = (
    "model", "dataset", "T", "variant", "weights_sha256", "eval_images", "eval_batch", "batch_dependent",
    "top1_claimed", "top1", "top1_ci_low", "top1_ci_high", "top1_batch1", "top1_batch_diff", "firing_rate",
    "energy_mj_claimed", "energy_mj", "ops_energy_mj", "implied_firing_rate", "verdict", "run_id", "state", "paper",
)


def eval_only_mask(runs: pd.DataFrame) -> pd.Series:
    """Which runs of a runs frame evaluated a weights file (they carry its SHA-256) instead of training."""
    if "weights_sha256" not in runs:
        return pd.Series(False, index=runs.index)
    return runs["weights_sha256"].notna()


def implied_firing_rate(claimed_mj: float | None, encoding_flops: float | None, dense_sops: float | None
                        ) -> float | None:
    """The uniform firing rate that makes Eq. 18 give ``claimed_mj`` (formula in the module docstring); None when a
    term is unknown or the model has no spiking FLOPs."""
    if claimed_mj is None or encoding_flops is None or not dense_sops:
        return None
    from harness.metrics.energy import E_AC_PJ, E_MAC_PJ, PJ_PER_MJ  # harness.metrics imports torch: seconds

    return (claimed_mj * PJ_PER_MJ - E_MAC_PJ * encoding_flops) / (E_AC_PJ * dense_sops)


def wilson_interval(top1: float, images: int) -> tuple[float, float]:
    """The 95% Wilson score interval (in %) of a top-1 of ``top1`` % measured on ``images`` images."""
    p, n, z2 = top1 / 100.0, images, Z_95 ** 2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return 100.0 * (centre - half), 100.0 * (centre + half)


def released_verdict(claim: float | None, top1: float | None, images: float | None, margin: float) -> str:
    """Equivalence of one evaluation with a claim, on the binomial sampling interval (module docstring)."""
    if claim is None:
        return NO_CLAIM
    if top1 is None or not images:
        return NOT_RUN
    low, high = wilson_interval(top1, int(images))
    if claim - margin <= low and high <= claim + margin:
        return REPRODUCED
    if high < claim - margin or low > claim + margin:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def _released_arguments() -> dict[str, dict[str, str]]:
    """Per catalog model, its ``model_args`` as the runs frame records overrides (the constructor arguments its
    released checkpoint needs, e.g. a distillation head: they build the paper's model, not a changed one)."""
    from harness.tracking import flatten_params
    from harness.weights.catalog import active_catalog

    return {model: flatten_params("", dict(entry.model_args), {}) for model, entry in active_catalog().entries.items()}


def _claim(config: ConfigResult, claims: Claims, needed: dict[str, dict[str, str]]) -> Claim | None:
    """The paper's claim the configuration's weights measure (none for a model changed by overrides other than those
    its released checkpoint needs, ``needed``)."""
    if config.overrides and config.overrides != needed.get(config.model, {}) and config.variant is None:
        return None
    matching = [c for c in claims.matching(config.model, config.dataset, config.T, config.variant)
                if c.top1 is not None or c.energy_mj is not None]
    return matching[0] if matching else None


def _value(row: pd.Series | None, name: str) -> float | None:
    if row is None or name not in row or pd.isna(row[name]):
        return None
    return float(row[name])


def _record(config: ConfigResult, claims: Claims, margins: Margins, needed: dict[str, dict[str, str]]
            ) -> dict[str, Any]:
    claim = _claim(config, claims, needed)
    row = config.finished.iloc[0] if len(config.finished) else None
    top1, images = _value(row, "top1"), _value(row, "eval_images")
    low, high = wilson_interval(top1, int(images)) if top1 is not None and images else (None, None)
    energy_claim = claim.energy_mj if claim else None
    top1_claim = claim.top1 if claim else None
    verdict = released_verdict(top1_claim, top1, images, margins.top1)
    latest = config.runs.iloc[-1]
    return {
        "model": config.model, "dataset": config.dataset, "T": config.T, "variant": config.variant_label,
        "weights_sha256": (row if row is not None else latest)["weights_sha256"], "eval_images": images,
        "eval_batch": _value(row, "eval_batch"),
        "batch_dependent": None if row is None else str(row["batch_dependent"]).lower() == "true",
        "top1_claimed": top1_claim, "top1": top1, "top1_ci_low": low, "top1_ci_high": high,
        "top1_batch1": _value(row, "top1_batch1"), "top1_batch_diff": _value(row, "top1_batch_diff"),
        "firing_rate": _value(row, "firing_rate"), "energy_mj_claimed": energy_claim,
        "energy_mj": _value(row, "energy_mj"), "ops_energy_mj": _value(row, "ops_energy_mj"),
        "implied_firing_rate": implied_firing_rate(energy_claim, _value(row, "first_layer_macs"),
                                                   _value(row, "dense_sops")),
        "verdict": verdict if row is not None or claim is None else f"{NOT_RUN} ({config.outcome})",
        "run_id": (row if row is not None else latest)["run_id"],
        "state": "finished" if row is not None else config.outcome, "paper": claim.paper if claim else None,
    }


def released_records(runs: pd.DataFrame, claims: Claims, margins: Margins = Margins()) -> list[dict[str, Any]]:
    """One line per eval-only configuration of a runs frame (``load_runs``), by dataset and model."""
    configs = group_configs(runs[eval_only_mask(runs)])
    needed = _released_arguments() if configs else {}
    return [_record(config, claims, margins, needed) for config in configs]


def released_columns(margins: Margins) -> tuple[Column, ...]:
    top1, energy = "Top-1 (%)", "Energy (mJ)"
    return (Column("model", "Model", align="l"), Column("dataset", "Dataset", align="l"), Column("T", "T"),
            Column("weights", "Weights", align="l"), Column("images", "N"),
            Column("top1_paper", "paper", top1), Column("top1_ours", "official batch", top1),
            Column("top1_ci", "95% CI (binomial)", top1), Column("top1_batch1", "batch 1", top1),
            Column("batch_diff", "Δ batch", top1), Column("firing", "Firing rate"),
            Column("energy_paper", "paper", energy), Column("energy_ours", "ours (paper conv.)", energy),
            Column("implied", "Implied firing rate"), Column("verdict", f"verdict (±{margins.top1:g})", align="l"))


def _cells(record: dict[str, Any]) -> dict[str, str]:
    batch = MISSING if record["eval_batch"] is None else f"{int(record['eval_batch'])}"
    ours = fixed(record["top1"])
    if record["top1"] is not None:
        ours += f" (b={batch})"
    diff = record["top1_batch_diff"]
    return {
        "model": record["model"] + (f" [{record['variant']}]" if record["variant"] else ""),
        "dataset": record["dataset"], "T": str(record["T"]), "weights": str(record["weights_sha256"])[:12],
        "images": MISSING if record["eval_images"] is None else str(int(record["eval_images"])),
        "top1_paper": fixed(record["top1_claimed"]), "top1_ours": ours,
        "top1_ci": interval(record["top1_ci_low"], record["top1_ci_high"]),
        "top1_batch1": fixed(record["top1_batch1"]), "batch_diff": MISSING if diff is None else f"{diff:+.2f}",
        "firing": readable(record["firing_rate"]), "energy_paper": fixed(record["energy_mj_claimed"]),
        "energy_ours": readable(record["energy_mj"]), "implied": readable(record["implied_firing_rate"]),
        "verdict": record["verdict"],
    }


def _notes(records: list[dict[str, Any]], margins: Margins) -> tuple[str, ...]:
    papers = "; ".join(dict.fromkeys(r["paper"] for r in records if r["paper"]))
    notes = [f"paper: {papers}." if papers else "No line measures a paper's claim (models changed by overrides).",
             "Eval-only runs: the released weights evaluated once, nothing trained. Top-1 at the recipe's official "
             "evaluation batch (b) and at batch 1; Δ batch = official − batch 1 (non-zero only where the model "
             "couples the samples of a batch, e.g. QKFormer issue #14).",
             f"Verdict: a single deterministic evaluation has no seed variance, so its uncertainty is the sampling "
             f"error of a top-1 on N images (binomial, 95% Wilson interval over the N images evaluated): "
             f"reproduced when that interval lies inside paper ± {margins.top1:g} points, not reproduced when it "
             f"lies wholly outside, inconclusive otherwise.",
             "Firing rate: spikes per neuron and time step over every neuron layer, measured on the released weights "
             "(per layer and time step: the run's firing.json / firing.md). Energy: MSViT App. C, Eq. 18 with those "
             "rates. Implied firing rate: the one rate that, put into Eq. 18 with the model's measured per-layer "
             "FLOPs, gives the paper's printed energy: (E_paper − 4.6 pJ × FLOPs_enc) / (0.9 pJ × Σ_l T_l × "
             "FLOPs_l)."]
    return tuple(notes)


def released_table(runs: pd.DataFrame, claims: Claims, margins: Margins = Margins()
                   ) -> tuple[pd.DataFrame, DisplayTable]:
    """The table's tidy data (one row per line, the CSV) and its display form."""
    records = released_records(runs, claims, margins)
    data = pd.DataFrame.from_records(records, columns=list(RECORD_COLUMNS))
    display = DisplayTable(RELEASED_TABLE, RELEASED_TITLE, released_columns(margins),
                           (Panel(None, tuple(_cells(r) for r in records)),), _notes(records, margins))
    return data, display
