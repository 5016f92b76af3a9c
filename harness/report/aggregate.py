"""Seeds of one configuration pooled into statistics (mean, std, n, 95% t-interval), and the verdict that
compares them with a paper's claim (an equivalence test with a margin).

Seeds are pooled only across runs of the same configuration, the same code fingerprint and the same source
(``harness.bundle.origin``: ``local`` or an imported site): runs computed by different code are shown apart,
never averaged, and each site's runs stay its own row (an imported copy of a local run has the same run id and
seed: pooling the two would count one seed twice; and a reader compares sites)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable

import pandas as pd
from scipy.stats import norm as normal
from scipy.stats import t as student_t

from harness.bundle.origin import DISAGREES, LOCAL_SOURCE, NOT_VERIFIED, VERIFIED, source_label

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
SINGLE_RUN = "single run"
NOT_RUN = "not run yet"
CLAIM_ONLY = "claim only"
NO_CLAIM = "no claim"

CONFIDENCE = 0.95
Z_CONFIDENCE = float(normal.ppf(0.5 + CONFIDENCE / 2))  # 1.96: the normal quantile of the same level
KEY_TAGS = ("dataset", "model", "T", "variant", "recipe")
TEACHER_PARAM = "params.recipe.distill.teacher"  # a distillation teacher: zoo ones count in the code fingerprint
# RunSpec fields that differ between the seeds of one configuration (or only say where it was run from).
NOT_CONFIG = ("params.spec.seed", "params.spec.suite")
BUDGET_PARAMS = ("epochs", "limit_batches", "subset")
BUDGET_UNKNOWN = "not recorded"
OVERRIDE_PREFIX = "params.spec.overrides."
# The epoch compared with the papers: their training scripts (timm ``train.py`` for CIFAR, the MAE/DeiT-style
# ImageNet and SEW-style DVS scripts) log and report the best eval top-1 over the epochs.
COMPARED_TOP1 = "best_top1"
# Metrics every finished run logs: a NaN there was logged as NaN (a non-finite result), not left out.
ALWAYS_LOGGED = (COMPARED_TOP1, "top1")


def sampling_half_width(top1: float, n_test: int) -> float:
    """The 95% half-width (points) of a top-1 measured on ``n_test`` images, from the binomial standard error
    ``sqrt(p (1 - p) / n_test)`` (normal approximation, ``Z_CONFIDENCE`` x it). ``p`` is the Agresti-Coull
    estimate ``(correct + 2) / (n_test + 4)``, so that a top-1 of 0% or 100% does not claim zero error."""
    p = (top1 / 100.0 * n_test + 2.0) / (n_test + 4.0)
    return Z_CONFIDENCE * 100.0 * math.sqrt(p * (1.0 - p) / n_test)


@dataclass(frozen=True)
class Stat:
    """Summary of one metric over seeds: ``n`` values, their mean, sample std and 95% t-interval
    (std and interval None below two values or with an infinite one; everything None without values). Missing
    (None or NaN) values are left out: ``verdict`` is what counts them."""

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None

    @classmethod
    def of(cls, values: Iterable[float], n_test: int | None = None) -> Stat:
        """With ``n_test`` (a top-1 over that many test images) the interval's half-width is at least
        ``sampling_half_width(mean, n_test)``: seeds evaluated on the same images share that sampling error, so
        it does not shrink with their number, and identical seeds cannot claim an interval of zero width."""
        xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
        n = len(xs)
        if n == 0:
            return cls(0, None, None, None, None)
        mean = sum(xs) / n
        if n == 1 or not math.isfinite(mean):  # an infinite value: no spread to speak of
            return cls(n, mean, None, None, None)
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
        half = float(student_t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
        if n_test:
            half = max(half, sampling_half_width(mean, n_test))
        return cls(n, mean, std, mean - half, mean + half)


REASON_CHARS = 160


def short_reason(reason: str) -> str:
    """The first line of a run's recorded reason, cut to ``REASON_CHARS`` characters (a reason may carry a
    traceback)."""
    line = reason.strip().splitlines()[0].strip()
    return line if len(line) <= REASON_CHARS else line[:REASON_CHARS - 1] + "…"


def _failed(value: float | None) -> bool:
    """A seed without a finite result (None, NaN or infinite): it diverged."""
    return value is None or not math.isfinite(float(value))


def verdict(values: Iterable[float | None], claim: float, margin: float, n_test: int | None = None) -> str:
    """An equivalence test of seeds against a claim: "reproduced" when the 95% interval of their mean (see
    ``Stat.of``; floored by the sampling error of a top-1 on ``n_test`` images when given) lies inside
    ``claim ± margin``, "not reproduced" when it lies wholly outside, "inconclusive" otherwise; "single run" with
    one seed (no interval). A NaN, infinite or None value is a seed that diverged: it is counted, never dropped
    ("inconclusive (1 of 3 seeds diverged)"); the others can then not reproduce the claim (a reproduction
    that fails on some seeds is not one), and when every seed diverged the claim is not reproduced."""
    values = list(values)
    finite = [float(v) for v in values if not _failed(v)]
    diverged = len(values) - len(finite)
    result = _equivalence(finite, claim, margin, n_test)
    if not diverged:
        return result
    if not finite:
        result = NOT_REPRODUCED
    elif result == REPRODUCED:
        result = INCONCLUSIVE
    return f"{result} ({diverged} of {len(values)} seeds diverged)"


def _equivalence(values: list[float], claim: float, margin: float, n_test: int | None) -> str:
    if not values:
        return NOT_RUN
    stat = Stat.of(values, n_test)
    if stat.ci_low is None:
        return SINGLE_RUN
    low, high = claim - margin, claim + margin
    if low <= stat.ci_low and stat.ci_high <= high:
        return REPRODUCED
    if stat.ci_high < low or stat.ci_low > high:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def claim_verdict(claim: float | None, values: Iterable[float | None], margin: float,
                  n_test: int | None = None) -> str:
    """``verdict`` where there may be no claim ("no claim") or no seed yet ("not run yet")."""
    values = list(values)
    if claim is None:
        return NO_CLAIM
    return NOT_RUN if not values else verdict(values, claim, margin, n_test)


@dataclass(frozen=True)
class Badge:
    """A row's verification badge: ``text`` (``verified``, ``disagreements N`` or ``not verified``), its
    ``state`` (``VERIFIED``, ``DISAGREES``, ``NOT_VERIFIED``) and ``title``: each run's verdict and date."""

    text: str
    state: str
    title: str


@dataclass(frozen=True, eq=False)
class ConfigResult:
    """All runs (any state) of one configuration from one source computed by one code: the same model, data, T,
    variant, recipe and spec parameters (when the runs frame has them: ``spec_recorded``), the same source label
    and code fingerprint, differing only in seed. Statistics pool its finished runs."""

    dataset: str
    model: str
    T: int
    variant: str | None
    recipe: str | None
    config: dict[str, str]
    runs: pd.DataFrame = field(repr=False)
    spec_recorded: bool = True
    source: str = LOCAL_SOURCE
    code_fingerprint: str | None = None

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

    def seed_values(self, metric: str) -> list[float]:
        """What a verdict weighs: the finished runs' values and a NaN for every diverged run (no survivorship);
        a finished run that logged NaN for a metric every run logs (``ALWAYS_LOGGED``) counts as diverged too."""
        diverged = int((self.runs["state"] == "diverged").sum())
        finished = ([float(v) for v in self.finished[metric]] if metric in ALWAYS_LOGGED else self.values(metric))
        return finished + [math.nan] * diverged

    @property
    def n_test(self) -> int | None:
        """Images each evaluation of the finished runs covered (the fewest, if they differ); None if unrecorded."""
        counts = [int(v) for v in self.finished.get("eval_images", pd.Series(dtype=float)) if not pd.isna(v)]
        return min(counts) if counts else None

    def top1_stat(self) -> Stat:
        """Statistics of the compared top-1, its interval floored by the sampling error on ``n_test`` images."""
        return Stat.of(self.values(COMPARED_TOP1), self.n_test)

    def top1_verdict(self, claim: float | None, margin: float) -> str:
        """The compared top-1 of every seed (diverged ones counted) against ``claim ± margin``; with no seed
        to weigh, what became of the runs ("3 failed: reason")."""
        values = self.seed_values(COMPARED_TOP1)
        if not values and self.outcome:
            return self.outcome
        return claim_verdict(claim, values, margin, self.n_test)

    @property
    def unfinished(self) -> int:
        return int((self.runs["state"] != "finished").sum())

    @property
    def outcome(self) -> str:
        """What happened to the runs outside the statistics, with their reasons: "1 diverged: loss is nan at
        epoch 12, 2 failed: dataset cifar10 missing under /data" ("" if none)."""
        others = self.runs[self.runs["state"] != "finished"]
        parts = []
        for state, runs in sorted(others.groupby(others["state"].fillna("unknown state"), sort=False),
                                  key=lambda item: (item[0] != "diverged", item[0])):
            reasons = sorted({short_reason(r) for r in runs["reason"] if isinstance(r, str) and r.strip()})
            parts.append(f"{len(runs)} {state}" + (f": {'; '.join(reasons)}" if reasons else ""))
        return ", ".join(parts)

    def only_nan(self, metric: str) -> bool:
        """Whether the finished runs logged ``metric`` as NaN only (a metric every finished run logs: a
        non-finite result, shown as ``nan`` rather than as a missing value)."""
        return len(self.finished) > 0 and bool(self.finished[metric].isna().all())

    @property
    def overrides(self) -> dict[str, str]:
        """The model constructor arguments the runs changed (a shrunk or modified model)."""
        return {k.removeprefix(OVERRIDE_PREFIX): v for k, v in self.config.items() if k.startswith(OVERRIDE_PREFIX)}

    @property
    def variant_label(self) -> str | None:
        """The variant's name with the overrides that define the model, e.g. ``widths=[16, 32], heads=2`` or
        ``dim=480, neuron: PLIF``."""
        from harness.report.counts import overrides_label

        changed = overrides_label(self.overrides)
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
        from harness.engine.provenance import run_code
        from harness.runs import checkout_fingerprint

        teachers = self.finished.get(TEACHER_PARAM, pd.Series(None, index=self.finished.index))
        codes = [run_code(model, recipe, {"distill": {"teacher": teacher}}) for model, recipe, teacher
                 in zip(self.finished["model"], self.finished["recipe"], teachers)]
        current = {code: checkout_fingerprint(*code) for code in set(codes)}  # computed once per process
        return any(f != current[code] for f, code in zip(self.finished["code_fingerprint"], codes))

    @property
    def imported(self) -> bool:
        return bool(self.runs["imported"].any()) if "imported" in self.runs else False

    @property
    def verification(self) -> Badge:
        """The badge of the finished runs: ``verified`` when every one was re-evaluated with identical predictions
        (within ``harness verify``'s tolerance), ``disagreements N`` (N: differing predictions, summed) when one
        was not, ``not verified`` otherwise; the title lists each run's verdict and date."""
        runs = with_sources(self.finished)
        verdicts = list(runs["verified"])
        counts = runs["disagreements"] if "disagreements" in runs else pd.Series(None, index=runs.index)
        differing = int(sum(pd.to_numeric(counts, errors="coerce").fillna(0)[runs["verified"] == DISAGREES]))
        if DISAGREES in verdicts:
            text, state = f"disagreements {differing}", DISAGREES
        elif verdicts and all(v == VERIFIED for v in verdicts):
            text, state = VERIFIED, VERIFIED
        else:
            text, state = NOT_VERIFIED, NOT_VERIFIED
        dates = runs["verified_date"] if "verified_date" in runs else pd.Series(None, index=runs.index)
        title = "; ".join(f"seed {seed}: {verdict}" + (f" on {date}" if isinstance(date, str) else "")
                          for seed, verdict, date in zip(runs["seed"], verdicts, dates))
        return Badge(text, state, title or "nothing to verify: no run finished")

    @property
    def code_label(self) -> str:
        """The code fingerprint's first 12 characters (``unrecorded`` without one)."""
        return self.code_fingerprint[:12] if self.code_fingerprint else "unrecorded"

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


def with_sources(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with complete source columns: ``source`` (``LOCAL_SOURCE`` where not recorded), ``imported``
    (a bool), ``verified`` (``NOT_VERIFIED`` where not recorded) and ``source_label`` (what is shown and
    filtered: ``harness.bundle.origin.source_label``)."""
    def column(name: str, default: str) -> pd.Series:
        values = frame[name] if name in frame.columns else pd.Series(None, index=frame.index, dtype=object)
        return values.astype(object).where(values.notna(), default)

    imported = column("imported", "false").map(lambda v: v is True or str(v).lower() == "true").astype(bool)
    source = column("source", LOCAL_SOURCE)
    return frame.assign(source=source, imported=imported, verified=column("verified", NOT_VERIFIED),
                        source_label=pd.Series([source_label(s, i) for s, i in zip(source, imported)],
                                               index=frame.index, dtype=object))


RUN_KEY = ["source_label", "run_id"]  # a local run and its imported copy are two runs


def unique_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run id and source (a run shared by several suites is logged once per suite): the latest
    logged copy, with every suite it belongs to in ``suites``."""
    frame = with_sources(frame)
    if frame.empty:
        return frame.assign(suites=pd.Series(dtype=object))
    suites = frame.groupby(RUN_KEY)["suite"].agg(lambda s: tuple(sorted(set(s.dropna()))))
    latest = frame.sort_values("start_time", na_position="first").drop_duplicates(RUN_KEY, keep="last")
    return (latest.assign(suites=[suites[key] for key in zip(latest["source_label"], latest["run_id"])])
            .sort_values(RUN_KEY).reset_index(drop=True))


def _fingerprints(runs: pd.DataFrame, keys: list[tuple]) -> list[str | None]:
    """Each run's code fingerprint as pooled: the recorded one; a run that recorded none and has no result
    (it failed before its code was fingerprinted) joins its configuration's runs when they all share one."""
    recorded = [None if pd.isna(f) else f for f in runs.get("code_fingerprint", pd.Series(None, index=runs.index))]
    known: dict[tuple, set[str]] = {}
    for key, fingerprint in zip(keys, recorded):
        if fingerprint is not None:
            known.setdefault(key, set()).add(fingerprint)
    return [fingerprint if fingerprint is not None or state in ("finished", "diverged")
            or len(known.get(key, ())) != 1 else next(iter(known[key]))
            for key, fingerprint, state in zip(keys, recorded, runs["state"])]


def group_configs(frame: pd.DataFrame) -> list[ConfigResult]:
    """Configurations of a runs frame (see ``ConfigResult``: one per configuration, source and code
    fingerprint), sorted by dataset, model, T, variant, local runs before imported ones."""
    runs = unique_runs(frame)
    config_columns = _config_columns(runs)
    keys = [tuple(None if pd.isna(row[c]) else row[c] for c in (*KEY_TAGS, "source_label", *config_columns))
            for _, row in runs.iterrows()]
    groups: dict[tuple, list[int]] = {}
    for index, key, fingerprint in zip(runs.index, keys, _fingerprints(runs, keys)):
        groups.setdefault((*key, fingerprint), []).append(index)
    results = []
    for key, indices in groups.items():
        dataset, model, T, variant, recipe, source = key[:len(KEY_TAGS) + 1]
        config = {c: v for c, v in zip(config_columns, key[len(KEY_TAGS) + 1:-1]) if v is not None}
        members = runs.loc[indices].sort_values(["seed", "run_id"]).reset_index(drop=True)
        results.append(ConfigResult(dataset, model, int(T), variant, recipe, config, members,
                                    spec_recorded=any(c.startswith("params.spec.") for c in runs.columns),
                                    source=source, code_fingerprint=key[-1]))
    return sorted(results, key=lambda r: (r.dataset, r.model, r.T, r.variant or "", r.recipe or "",
                                          sorted(r.config.items()), r.imported, r.source, r.code_fingerprint or ""))


def distinguishing(configs: list[ConfigResult]) -> dict[int, str]:
    """Short labels telling apart configurations that measure the same claim (by position in ``configs``):
    the recipe and spec parameters whose values differ between them, and the code fingerprint (``code=<first
    12>``) where one configuration was computed by different code; empty when there is only one. Their source
    is not among them: it has its own column."""
    if len(configs) < 2:
        return {i: "" for i in range(len(configs))}
    fields = [("recipe", [c.recipe for c in configs])]
    names = sorted({k for c in configs for k in c.config if not k.startswith(OVERRIDE_PREFIX)})  # in variant_label
    fields += [(name.removeprefix("params.spec."), [c.config.get(name) for c in configs]) for name in names]
    differing = [(label, values) for label, values in fields if len(set(values)) > 1]
    if differing and differing[0][0] == "recipe":  # a recipe's hash differs with it: say it once
        differing = [(label, values) for label, values in differing if label != "recipe_hash"]
    labels = [", ".join(f"{label}={values[i]}" for label, values in differing) for i in range(len(configs))]
    codes = {}
    for label, config in zip(labels, configs):
        codes.setdefault(label, set()).add(config.code_label)
    return {i: ", ".join(filter(None, [label, f"code={configs[i].code_label}" if len(codes[label]) > 1 else ""]))
            for i, label in enumerate(labels)}
