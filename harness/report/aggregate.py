"""Seeds of one configuration pooled into statistics (mean, std, n, 95% t-interval), and the verdict that
compares them with a paper's claim (an equivalence test with a margin)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable

import pandas as pd
from scipy.stats import t as student_t

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NOT_RUN = "not run yet"
CLAIM_ONLY = "claim only"
NO_CLAIM = "no claim"

CONFIDENCE = 0.95
KEY_TAGS = ("dataset", "model", "T", "variant", "recipe")
# RunSpec fields that differ between the seeds of one configuration (or only say where it was run from).
NOT_CONFIG = ("params.spec.seed", "params.spec.suite")
BUDGET_PARAMS = ("epochs", "limit_batches", "subset")
BUDGET_UNKNOWN = "not recorded"
OVERRIDE_PREFIX = "params.spec.overrides."
# The epoch compared with the papers: their training scripts (timm ``train.py`` for CIFAR, the MAE/DeiT-style
# ImageNet and SEW-style DVS scripts) log and report the best eval top-1 over the epochs.
COMPARED_TOP1 = "best_top1"


@dataclass(frozen=True)
class Stat:
    """Summary of one metric over seeds: ``n`` values, their mean, sample std and 95% t-interval
    (std and interval None below two values; everything None without values)."""

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Stat:
        xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
        n = len(xs)
        if n == 0:
            return cls(0, None, None, None, None)
        mean = sum(xs) / n
        if n == 1:
            return cls(1, mean, None, None, None)
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
        half = float(student_t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
        return cls(n, mean, std, mean - half, mean + half)


def verdict(values: Iterable[float], claim: float, margin: float) -> str:
    """An equivalence test of seeds against a claim: "reproduced" when the 95% two-sided t-interval of their
    mean lies inside ``claim ± margin``, "not reproduced" when it lies wholly outside, "inconclusive" otherwise
    (fewer than two values included: one seed has no interval)."""
    stat = Stat.of(values)
    if stat.ci_low is None:
        return INCONCLUSIVE
    low, high = claim - margin, claim + margin
    if low <= stat.ci_low and stat.ci_high <= high:
        return REPRODUCED
    if stat.ci_high < low or stat.ci_low > high:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def claim_verdict(claim: float | None, values: Iterable[float], margin: float) -> str:
    """``verdict`` where there may be no claim ("no claim") or no measurement yet ("not run yet")."""
    values = [v for v in values if not pd.isna(v)]
    if claim is None:
        return NO_CLAIM
    return NOT_RUN if not values else verdict(values, claim, margin)


@dataclass(frozen=True, eq=False)
class ConfigResult:
    """All runs (any state) of one configuration: the same model, data, T, variant, recipe and spec
    parameters (when the runs frame has them: ``spec_recorded``), differing only in seed. Statistics pool its
    finished runs."""

    dataset: str
    model: str
    T: int
    variant: str | None
    recipe: str | None
    config: dict[str, str]
    runs: pd.DataFrame = field(repr=False)
    spec_recorded: bool = True

    @cached_property
    def finished(self) -> pd.DataFrame:
        return self.runs[self.runs["state"] == "finished"]

    def stat(self, metric: str) -> Stat:
        """Statistics of a final metric over the finished runs."""
        return Stat.of(self.finished[metric].tolist())

    @property
    def family(self) -> str | None:
        families = self.runs["family"].dropna().unique().tolist()
        return families[0] if families else None

    def values(self, metric: str) -> list[float]:
        """A final metric of the finished runs (missing values left out)."""
        return [float(v) for v in self.finished[metric] if not pd.isna(v)]

    @property
    def unfinished(self) -> int:
        return int((self.runs["state"] != "finished").sum())

    @property
    def outcome(self) -> str:
        """What happened to the runs outside the statistics: "1 diverged: reason, 2 failed" ("" if none)."""
        diverged = self.runs[self.runs["state"] == "diverged"]
        reasons = sorted({r for r in diverged["reason"] if r})
        parts = []
        if len(diverged):
            parts.append(f"{len(diverged)} diverged" + (f": {'; '.join(reasons)}" if reasons else ""))
        others = self.runs.loc[~self.runs["state"].isin(("finished", "diverged")), "state"]
        parts += [f"{count} {state or 'unknown state'}" for state, count in sorted(others.value_counts(dropna=False).items())]
        return ", ".join(parts)

    @property
    def overrides(self) -> dict[str, str]:
        """The model constructor arguments the runs changed (a shrunk or modified model)."""
        return {k.removeprefix(OVERRIDE_PREFIX): v for k, v in self.config.items() if k.startswith(OVERRIDE_PREFIX)}

    @property
    def variant_label(self) -> str | None:
        """The variant's name with the overrides that define the model, e.g. ``widths=[16, 32], heads=2``."""
        changed = ", ".join(f"{k}={v}" for k, v in sorted(self.overrides.items()))
        if self.variant and changed:
            return f"{self.variant} ({changed})"
        return self.variant or changed or None

    @property
    def eval_batch(self) -> tuple[str | None, bool]:
        """The eval batch(es) of the finished runs, and whether any result depends on the batch it was
        evaluated in (the model couples the samples of a batch)."""
        batches = sorted({int(b) for b in self.finished["eval_batch"] if not pd.isna(b)})
        dependent = any(str(v).lower() == "true" for v in self.finished["batch_dependent"])
        return (", ".join(map(str, batches)) or None), dependent

    @property
    def stale(self) -> bool:
        """Whether a finished run was computed by code other than this checkout's (its recorded code fingerprint
        differs or is missing): its numbers may not be what this code gives."""
        from harness.engine.provenance import code_fingerprint

        return any(f != code_fingerprint() for f in self.finished["code_fingerprint"])

    @property
    def suites(self) -> list[str]:
        return sorted({s for entry in self.runs["suites"] for s in entry})

    @property
    def date(self) -> pd.Timestamp | None:
        latest = self.runs["start_time"].max()
        return None if pd.isna(latest) else latest

    @property
    def budget(self) -> str | None:
        """The budget knobs that cut this configuration short of its recipe (None: the full recipe;
        ``BUDGET_UNKNOWN`` when the runs frame carries no ``params.spec.*`` columns)."""
        if not self.spec_recorded:
            return BUDGET_UNKNOWN
        cut = [f"{name}={self.config[f'params.spec.{name}']}" for name in BUDGET_PARAMS
               if self.config.get(f"params.spec.{name}") is not None]
        return ", ".join(cut) or None

    @property
    def device_hours(self) -> tuple[Stat, str | None]:
        """Training hours per run and the device kind they were spent on ("CPU", "GPU", or "mixed")."""
        kinds = {"CPU" if d in (None, "cpu") else "GPU" for d in self.finished["device"]}
        kind = None if not kinds else kinds.pop() if len(kinds) == 1 else "mixed"
        return self.stat("train_device_hours"), kind


def _config_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if c.startswith("params.spec.") and c not in NOT_CONFIG)


def unique_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run id (a run shared by several suites is logged once per suite): the latest logged
    copy, with every suite it belongs to in ``suites``."""
    if frame.empty:
        return frame.assign(suites=pd.Series(dtype=object))
    suites = frame.groupby("run_id")["suite"].agg(lambda s: tuple(sorted(set(s.dropna()))))
    latest = frame.sort_values("start_time", na_position="first").drop_duplicates("run_id", keep="last")
    return latest.assign(suites=latest["run_id"].map(suites)).sort_values(["run_id"]).reset_index(drop=True)


def group_configs(frame: pd.DataFrame) -> list[ConfigResult]:
    """Configurations of a runs frame (see ``ConfigResult``), sorted by dataset, model, T, variant."""
    runs = unique_runs(frame)
    config_columns = _config_columns(runs)
    groups: dict[tuple, list[int]] = {}
    for index, row in runs.iterrows():
        key = tuple(None if pd.isna(row[c]) else row[c] for c in (*KEY_TAGS, *config_columns))
        groups.setdefault(key, []).append(index)
    results = []
    for key, indices in groups.items():
        dataset, model, T, variant, recipe = key[:len(KEY_TAGS)]
        config = {c: v for c, v in zip(config_columns, key[len(KEY_TAGS):]) if v is not None}
        members = runs.loc[indices].sort_values(["seed", "run_id"]).reset_index(drop=True)
        results.append(ConfigResult(dataset, model, int(T), variant, recipe, config, members,
                                    spec_recorded=any(c.startswith("params.spec.") for c in runs.columns)))
    return sorted(results, key=lambda r: (r.dataset, r.model, r.T, r.variant or "", r.recipe or "",
                                          sorted(r.config.items())))


def distinguishing(configs: list[ConfigResult]) -> dict[int, str]:
    """Short labels telling apart configurations that measure the same claim (by position in ``configs``):
    the recipe and spec parameters whose values differ between them; empty when there is only one."""
    if len(configs) < 2:
        return {i: "" for i in range(len(configs))}
    fields = [("recipe", [c.recipe for c in configs])]
    names = sorted({k for c in configs for k in c.config if not k.startswith(OVERRIDE_PREFIX)})  # in variant_label
    fields += [(name.removeprefix("params.spec."), [c.config.get(name) for c in configs]) for name in names]
    differing = [(label, values) for label, values in fields if len(set(values)) > 1]
    if differing and differing[0][0] == "recipe":  # a recipe's hash differs with it: say it once
        differing = [(label, values) for label, values in differing if label != "recipe_hash"]
    return {i: ", ".join(f"{label}={values[i]}" for label, values in differing) for i in range(len(configs))}
