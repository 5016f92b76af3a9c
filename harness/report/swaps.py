"""The "neuron swap" table: each configuration trained with a swapped neuron or surrogate (``overrides.neuron``,
``overrides.surrogate``: ``zoo.core.swap``) beside the same configuration with the family's own neuron, with the
verdict of ``harness.report.verdict`` on the swap's seeds against the own neuron's mean top-1."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.report.aggregate import OVERRIDE_PREFIX, ConfigResult, Stat
from harness.report.counts import overrides_label
from harness.report.formats import MISSING, Column, DisplayTable, Panel, fixed, interval, mean_std
from harness.suite import Margins

SWAP_TABLE = "neuron_swap"
SWAP_TITLE = "Neuron swap: each family with another neuron against its own"
OWN_NOT_RUN = "own neuron not run"
VERDICT_NOTE = (
    "A swap and its own-neuron line match when all but the swap is equal: model, dataset, T, variant, recipe and "
    "every other recorded spec parameter (size overrides, budget). The own neuron's mean top-1 stands where a "
    "paper's claim stands in the paper tables: reproduced when the swap's 95% CI lies inside own ± margin (the swap "
    "moves top-1 by less than the margin), not reproduced when it lies wholly outside, inconclusive otherwise; a "
    "diverged seed is counted.")
RECORD_COLUMNS = (
    "dataset", "family", "model", "T", "config", "role", "neuron", "top1_best_mean", "top1_best_std", "top1_n",
    "top1_ci_low", "top1_ci_high", "own_top1_mean", "top1_delta", "top1_margin", "verdict", "budget", "outcome",
    "unfinished_runs", "run_ids",
)


def _swap_keys(config: ConfigResult) -> set[str]:
    """The recorded spec parameters of a configuration that are a component swap (the zoo, and torch with it, is
    imported only for a configuration with model overrides)."""
    overrides = [key for key in config.config if key.startswith(OVERRIDE_PREFIX)]
    if not overrides:
        return set()
    from zoo.core.swap import SWAP_FIELDS

    return {key for key in overrides if key.removeprefix(OVERRIDE_PREFIX).partition(".")[0] in SWAP_FIELDS}


def _base_key(config: ConfigResult) -> tuple:
    """What a swap and its own-neuron configuration share: all but the swap."""
    rest = tuple(sorted((k, v) for k, v in config.config.items() if k not in _swap_keys(config)))
    return config.dataset, config.model, config.T, config.variant, config.recipe, rest


def swapped(config: ConfigResult) -> bool:
    """Whether a configuration's model has a swapped component."""
    return bool(_swap_keys(config))


def _own_label(model: str) -> str:
    import zoo
    from zoo.core.swap import LABELS

    return f"{LABELS[zoo.model_card(model).swaps.neuron]} (own)"


def _swap_label(config: ConfigResult) -> str:
    return overrides_label({k.removeprefix(OVERRIDE_PREFIX): v for k, v in config.config.items()
                            if k in _swap_keys(config)})


def _size_label(config: ConfigResult) -> str:
    return overrides_label({k.removeprefix(OVERRIDE_PREFIX): v for k, v in config.config.items()
                            if k.startswith(OVERRIDE_PREFIX) and k not in _swap_keys(config)})


def _record(config: ConfigResult, neuron: str, own: Stat | None, margins: Margins) -> dict[str, Any]:
    best = config.top1_stat()
    if own is None:  # this line is the own neuron: the reference
        verdict = None
    else:
        verdict = OWN_NOT_RUN if own.mean is None else config.top1_verdict(own.mean, margins.top1)
    return {
        "dataset": config.dataset, "family": config.family, "model": config.model, "T": config.T,
        "config": _size_label(config) or None, "role": "own" if own is None else "swap", "neuron": neuron,
        "top1_best_mean": best.mean,
        "top1_best_std": best.std, "top1_n": best.n, "top1_ci_low": best.ci_low, "top1_ci_high": best.ci_high,
        "own_top1_mean": None if own is None else own.mean,
        "top1_delta": None if own is None or own.mean is None or best.mean is None else best.mean - own.mean,
        "top1_margin": margins.top1, "verdict": verdict, "budget": config.budget, "outcome": config.outcome or None,
        "unfinished_runs": config.unfinished, "run_ids": " ".join(config.finished_column("run_id")),
    }


def swap_records(configs: list[ConfigResult], margins: Margins = Margins()) -> list[dict[str, Any]]:
    """One line per own-neuron configuration that has swaps, then one per swap of it (by label); a swap whose
    own-neuron configuration has no run still gets its line."""
    owns = {_base_key(c): c for c in configs if not swapped(c)}
    groups: dict[tuple, list[ConfigResult]] = {}
    for config in configs:
        if swapped(config):
            groups.setdefault(_base_key(config), []).append(config)
    records = []
    for key, swaps in sorted(groups.items(), key=lambda item: tuple(map(str, item[0]))):
        own = owns.get(key)
        if own is not None:
            records.append(_record(own, _own_label(own.model), None, margins))
        reference = own.top1_stat() if own is not None else Stat.of([])
        records += [_record(c, _swap_label(c), reference, margins) for c in sorted(swaps, key=_swap_label)]
    return records


def _cells(record: dict[str, Any]) -> dict[str, str]:
    return {
        "dataset": record["dataset"], "family": record["family"] or MISSING, "model": record["model"],
        "T": str(record["T"]), "config": record["config"] or MISSING, "neuron": record["neuron"],
        "top1": mean_std(record["top1_best_mean"], record["top1_best_std"]),
        "n": str(record["top1_n"]) + (f" (+{record['outcome']})" if record["outcome"] else ""),
        "top1_ci": interval(record["top1_ci_low"], record["top1_ci_high"]),
        "delta": MISSING if record["top1_delta"] is None else f"{record['top1_delta']:+.2f}",
        "verdict": record["verdict"] or "reference", "budget": record["budget"] or "full recipe",
    }


def swap_table(configs: list[ConfigResult], margins: Margins = Margins()) -> tuple[pd.DataFrame, DisplayTable]:
    """The neuron swap table's tidy data (the CSV) and display form."""
    records = swap_records(configs, margins)
    top1 = "Top-1 (%) best"
    columns = (Column("dataset", "Dataset", align="l"), Column("family", "Family", align="l"),
               Column("model", "Model", align="l"), Column("T", "T"), Column("config", "Overrides", align="l"),
               Column("neuron", "Variant", align="l"), Column("top1", "mean ± std", top1), Column("n", "n", top1),
               Column("top1_ci", "95% CI", top1), Column("delta", "Δ vs own", top1),
               Column("verdict", f"verdict vs own (±{fixed(margins.top1, 1)})", top1, "l"),
               Column("budget", "Budget", align="l"))
    notes = (VERDICT_NOTE,
             "Variant: the swap as the run's overrides give it; a neuron swap keeps each neuron's threshold, reset, "
             "surrogate and time axis, and leaves the neurons a family's model card exempts (zoo.core.swap).")
    display = DisplayTable(SWAP_TABLE, SWAP_TITLE, columns, (Panel(None, tuple(map(_cells, records))),),
                           notes if records else ())
    return pd.DataFrame.from_records(records, columns=list(RECORD_COLUMNS)), display
