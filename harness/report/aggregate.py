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
from typing import Any, Iterable

import numpy as np
import pandas as pd
from scipy.special import ndtri, stdtrit

from harness.bundle.origin import DISAGREES, LOCAL_SOURCE, NOT_VERIFIED, VERIFIED, source_label

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
SINGLE_RUN = "single run"
NOT_RUN = "not run yet"
CLAIM_ONLY = "claim only"
NO_CLAIM = "no claim"

CONFIDENCE = 0.95
Z_CONFIDENCE = float(ndtri(0.5 + CONFIDENCE / 2))  # 1.96: the normal quantile of the same level
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
    estimate ``(correct + 2) / (n_test + 4)``, so that a top-1 of 0% or 100% does not claim zero error. Works on
    numbers and, element-wise, on numpy arrays."""
    p = (top1 / 100.0 * n_test + 2.0) / (n_test + 4.0)
    return Z_CONFIDENCE * 100.0 * np.sqrt(p * (1.0 - p) / n_test)


def t_quantile(df: Any) -> Any:
    """The ``CONFIDENCE`` two-sided quantile of Student's t with ``df`` degrees of freedom (a number or an array):
    scipy's ``t.ppf`` computes it with the same ``stdtrit``, without importing scipy.stats (seconds)."""
    return stdtrit(df, 0.5 + CONFIDENCE / 2)


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
        std = math.sqrt(sum((x - mean) * (x - mean) for x in xs) / (n - 1))  # products: as ``pooled_stats``
        half = float(t_quantile(n - 1)) * std / math.sqrt(n)
        if n_test:
            half = max(half, float(sampling_half_width(mean, n_test)))
        return cls(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class StatColumns:
    """``Stat`` of many groups at once (``pooled_stats``): arrays indexed by group, NaN where ``Stat`` has None
    (a mean is None only where ``n`` is 0: an infinite sum's NaN mean stays NaN)."""

    n: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray

    def at(self, group: int) -> Stat:
        """The ``Stat`` of one group."""
        return self.each[group]

    @cached_property
    def each(self) -> list[Stat]:
        """Every group's ``Stat`` (made once: a report asks for each several times)."""
        def number(value: float) -> float | None:
            return None if value != value else value

        return [Stat(n, mean if n else None, number(std), number(low), number(high)) for n, mean, std, low, high
                in zip(self.n.tolist(), self.mean.tolist(), self.std.tolist(), self.ci_low.tolist(),
                       self.ci_high.tolist())]


def pooled_stats(values: np.ndarray, groups: np.ndarray, count: int, n_test: np.ndarray | None = None
                 ) -> StatColumns:
    """``Stat.of`` of every group at once: ``values[i]`` belongs to group ``groups[i]`` (0 to ``count`` - 1),
    NaN values are left out; ``n_test``: per group, the test images that floor a top-1 interval (NaN or 0: no
    floor). Sums run in the values' order (``np.bincount`` adds sequentially), as ``Stat.of`` adds its list, so
    both give the same numbers."""
    kept = ~np.isnan(values)
    where, xs = groups[kept], values[kept]
    n = np.bincount(where, minlength=count)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(where, weights=xs, minlength=count) / n
        spread = (n >= 2) & np.isfinite(mean)
        deviations = xs - mean[where]
        squares = np.bincount(where, weights=deviations * deviations, minlength=count)
        std = np.where(spread, np.sqrt(squares / (n - 1)), np.nan)
        half = t_quantile(np.maximum(n - 1, 1)) * std / np.sqrt(n)
        if n_test is not None:
            floored = spread & (np.nan_to_num(n_test) > 0)
            floor = sampling_half_width(mean, np.where(floored, n_test, 1.0))
            half = np.where(floored & (floor > half), floor, half)
    return StatColumns(n, np.where(n > 0, mean, np.nan), std, mean - half, mean + half)


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
    return judged(Stat.of(finite, n_test), len(values), claim, margin)


def judged(finite: Stat, seeds: int, claim: float, margin: float) -> str:
    """``verdict``'s decision from the statistics of the finite seeds (``finite``, floored as wanted) and the
    number of seeds weighed (``seeds``: the others diverged)."""
    result = _equivalence(finite, claim, margin)
    diverged = seeds - finite.n
    if not diverged:
        return result
    if not finite.n:
        result = NOT_REPRODUCED
    elif result == REPRODUCED:
        result = INCONCLUSIVE
    return f"{result} ({diverged} of {seeds} seeds diverged)"


def _equivalence(stat: Stat, claim: float, margin: float) -> str:
    if not stat.n:
        return NOT_RUN
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


def _missing(value: object) -> bool:
    """None, NaN or NaT: a cell with no value (``x != x`` only for NaN-like values, without pandas' overhead)."""
    return value is None or value != value


class PooledRuns:
    """The runs of every configuration of a runs frame in one frame sorted by configuration, seed and run id (a
    configuration: the contiguous rows of one group), and what statistics, verdicts and provenance are computed
    from: each metric's ``Stat`` of every configuration at once (``pooled_stats``), each column read once, each
    distinct model code fingerprinted once. 10,000 runs cost a few column operations instead of a small
    DataFrame and its filters per configuration."""

    def __init__(self, frame: pd.DataFrame, groups: np.ndarray, count: int):
        self.frame, self.groups, self.count = frame, groups, count
        self.bounds = np.searchsorted(groups, np.arange(count + 1)).tolist()
        self.finished = (frame["state"] == "finished").to_numpy()
        self._columns: dict[str, list] = {}
        self._numbers: dict[str, np.ndarray] = {}
        self._prefixed: dict[str, list[str]] = {}
        self._stats: dict[tuple[str, bool, bool], StatColumns] = {}

    def rows(self, group: int) -> slice:
        return slice(self.bounds[group], self.bounds[group + 1])

    def column(self, name: str) -> list:
        """A column's values as Python objects (None for every run when the frame lacks it)."""
        if name not in self._columns:
            self._columns[name] = self.frame[name].tolist() if name in self.frame else [None] * len(self.frame)
        return self._columns[name]

    def columns_with(self, prefix: str) -> list[str]:
        """The frame's column names that start with ``prefix``."""
        if prefix not in self._prefixed:
            self._prefixed[prefix] = [c for c in self.frame.columns if str(c).startswith(prefix)]
        return self._prefixed[prefix]

    def numbers(self, name: str) -> np.ndarray:
        """A column as floats (NaN where missing or not a number)."""
        if name not in self._numbers:
            values = self.frame[name] if name in self.frame else pd.Series(np.nan, index=self.frame.index)
            self._numbers[name] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        return self._numbers[name]

    def per_group(self, mask: np.ndarray) -> np.ndarray:
        """How many rows of each group ``mask`` selects."""
        return np.bincount(self.groups[mask], minlength=self.count)

    @cached_property
    def finished_count(self) -> np.ndarray:
        return self.per_group(self.finished)

    @cached_property
    def diverged_count(self) -> np.ndarray:
        return self.per_group((self.frame["state"] == "diverged").to_numpy())

    @cached_property
    def n_test(self) -> np.ndarray:
        """Per group, the fewest images an evaluation of a finished run covered (NaN: unrecorded)."""
        images = self.numbers("eval_images")
        kept = self.finished & ~np.isnan(images)
        fewest = np.full(self.count, np.inf)
        np.minimum.at(fewest, self.groups[kept], images[kept])
        return np.where(np.isinf(fewest), np.nan, fewest)

    def stats(self, metric: str, finite: bool = False, floored: bool = False) -> StatColumns:
        """``Stat`` of a metric over each group's finished runs (only their finite values with ``finite``; the
        interval floored by the sampling error on ``n_test`` images with ``floored``), computed once."""
        key = (metric, finite, floored)
        if key not in self._stats:
            values = np.where(self.finished, self.numbers(metric), np.nan)
            if finite:
                values = np.where(np.isfinite(values), values, np.nan)
            self._stats[key] = pooled_stats(values, self.groups, self.count, self.n_test if floored else None)
        return self._stats[key]

    @cached_property
    def stale(self) -> np.ndarray:
        """Per group, whether a finished run recorded a code fingerprint other than this checkout's for its
        model, recipe and teacher (each distinct one fingerprinted once)."""
        from harness.engine.provenance import run_code
        from harness.runs import checkout_fingerprint

        current: dict[tuple, str] = {}
        flags = np.zeros(len(self.frame), dtype=bool)
        rows = zip(self.column("model"), self.column("recipe"), self.column(TEACHER_PARAM),
                   self.column("code_fingerprint"), self.finished)
        for i, (model, recipe, teacher, recorded, finished) in enumerate(rows):
            if finished:
                if (model, recipe, teacher) not in current:
                    code = run_code(model, recipe, {"distill": {"teacher": teacher}})
                    current[(model, recipe, teacher)] = checkout_fingerprint(*code)
                flags[i] = recorded != current[(model, recipe, teacher)]
        return self.per_group(flags) > 0

    @cached_property
    def latest_start(self) -> list:
        """Per group, the latest start time of its runs (NaT when none is recorded)."""
        starts = self.frame["start_time"].groupby(self.groups).max()
        return starts.reindex(range(self.count)).tolist()


@dataclass(frozen=True, eq=False)
class ConfigResult:
    """All runs (any state) of one configuration from one source computed by one code: the same model, data, T,
    variant, recipe and spec parameters (when the runs frame has them: ``spec_recorded``), the same source label
    and code fingerprint, differing only in seed. Statistics pool its finished runs; they are read from the
    ``PooledRuns`` of every configuration grouped with it (``group``: its position there)."""

    dataset: str
    model: str
    T: int
    variant: str | None
    recipe: str | None
    config: dict[str, str]
    pooled: PooledRuns = field(repr=False)
    group: int = 0
    spec_recorded: bool = True
    source: str = LOCAL_SOURCE
    code_fingerprint: str | None = None

    @cached_property
    def rows(self) -> slice:
        """Where its runs are in ``pooled``."""
        return self.pooled.rows(self.group)

    @cached_property
    def runs(self) -> pd.DataFrame:
        """Its runs, by seed and run id."""
        return self.pooled.frame.iloc[self.rows].reset_index(drop=True)

    @cached_property
    def finished(self) -> pd.DataFrame:
        return self.runs[self.runs["state"] == "finished"]

    def column(self, name: str) -> list:
        """A column's values for its runs, by seed and run id."""
        return self.pooled.column(name)[self.rows]

    def finished_column(self, name: str) -> list:
        """A column's values for its finished runs."""
        rows = self.rows
        return [v for v, done in zip(self.pooled.column(name)[rows], self.pooled.finished[rows]) if done]

    def stat(self, metric: str) -> Stat:
        """Statistics of a final metric over the finished runs."""
        return self.pooled.stats(metric).at(self.group)

    @property
    def family(self) -> str | None:
        return next((f for f in self.column("family") if not _missing(f)), None)

    def values(self, metric: str) -> list[float]:
        """A final metric of the finished runs (missing values left out)."""
        rows = self.rows
        values = self.pooled.numbers(metric)[rows]
        return values[self.pooled.finished[rows] & ~np.isnan(values)].tolist()

    def seed_values(self, metric: str) -> list[float]:
        """What a verdict weighs: the finished runs' values and a NaN for every diverged run (no survivorship);
        a finished run that logged NaN for a metric every run logs (``ALWAYS_LOGGED``) counts as diverged too."""
        rows = self.rows
        finished = (self.pooled.numbers(metric)[rows][self.pooled.finished[rows]].tolist()
                    if metric in ALWAYS_LOGGED else self.values(metric))
        return finished + [math.nan] * int(self.pooled.diverged_count[self.group])

    def seeds(self, metric: str) -> int:
        """How many seeds a verdict on ``metric`` weighs: ``len(seed_values(metric))``."""
        finished = (self.pooled.finished_count if metric in ALWAYS_LOGGED else self.pooled.stats(metric).n)
        return int(finished[self.group] + self.pooled.diverged_count[self.group])

    def claim_verdict(self, metric: str, claim: float | None, margin: float, floored: bool = False) -> str:
        """``claim_verdict(claim, self.seed_values(metric), margin)`` (with ``n_test`` when ``floored``), from the
        statistics pooled for every configuration at once."""
        if claim is None:
            return NO_CLAIM
        seeds = self.seeds(metric)
        if not seeds:
            return NOT_RUN
        return judged(self.pooled.stats(metric, finite=True, floored=floored).at(self.group), seeds, claim, margin)

    @property
    def n_test(self) -> int | None:
        """Images each evaluation of the finished runs covered (the fewest, if they differ); None if unrecorded."""
        fewest = self.pooled.n_test[self.group]
        return None if math.isnan(fewest) else int(fewest)

    def top1_stat(self) -> Stat:
        """Statistics of the compared top-1, its interval floored by the sampling error on ``n_test`` images."""
        return self.pooled.stats(COMPARED_TOP1, floored=True).at(self.group)

    def top1_verdict(self, claim: float | None, margin: float) -> str:
        """The compared top-1 of every seed (diverged ones counted) against ``claim ± margin``; with no seed
        to weigh, what became of the runs ("3 failed: reason")."""
        if not self.seeds(COMPARED_TOP1) and self.outcome:
            return self.outcome
        return self.claim_verdict(COMPARED_TOP1, claim, margin, floored=True)

    @property
    def finished_runs(self) -> int:
        return int(self.pooled.finished_count[self.group])

    @property
    def unfinished(self) -> int:
        rows = self.rows
        return rows.stop - rows.start - self.finished_runs

    @property
    def outcome(self) -> str:
        """What happened to the runs outside the statistics, with their reasons: "1 diverged: loss is nan at
        epoch 12, 2 failed: dataset cifar10 missing under /data" ("" if none)."""
        if not self.unfinished:
            return ""
        by_state: dict[str, list] = {}
        for state, reason in zip(self.column("state"), self.column("reason")):
            if state != "finished":
                by_state.setdefault("unknown state" if _missing(state) else state, []).append(reason)
        parts = []
        for state in sorted(by_state, key=lambda name: (name != "diverged", name)):
            reasons = sorted({short_reason(r) for r in by_state[state] if isinstance(r, str) and r.strip()})
            parts.append(f"{len(by_state[state])} {state}" + (f": {'; '.join(reasons)}" if reasons else ""))
        return ", ".join(parts)

    def only_nan(self, metric: str) -> bool:
        """Whether the finished runs logged ``metric`` as NaN only (a metric every finished run logs: a
        non-finite result, shown as ``nan`` rather than as a missing value)."""
        return self.finished_runs > 0 and bool(self.pooled.stats(metric).n[self.group] == 0)

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
        batches = sorted({int(b) for b in self.finished_column("eval_batch") if not _missing(b)})
        dependent = any(str(v).lower() == "true" for v in self.finished_column("batch_dependent"))
        return (", ".join(map(str, batches)) or None), dependent

    @property
    def stale(self) -> bool:
        """Whether a finished run was computed by code other than this checkout's (its recorded code fingerprint
        differs or is missing): its numbers may not be what this code gives."""
        return bool(self.pooled.stale[self.group])

    @property
    def imported(self) -> bool:
        return any(self.column("imported"))

    @property
    def verification(self) -> Badge:
        """The badge of the finished runs: ``verified`` when every one was re-evaluated with identical predictions
        (within ``harness verify``'s tolerance), ``disagreements N`` (N: differing predictions, summed) when one
        was not, ``not verified`` otherwise; the title lists each run's verdict and date."""
        rows = self.rows
        done = self.pooled.finished[rows]
        verdicts = self.finished_column("verified")
        counts = self.pooled.numbers("disagreements")[rows][done].tolist()
        differing = int(sum(0.0 if count != count else count for count, verdict in zip(counts, verdicts)
                            if verdict == DISAGREES))
        if DISAGREES in verdicts:
            text, state = f"disagreements {differing}", DISAGREES
        elif verdicts and all(v == VERIFIED for v in verdicts):
            text, state = VERIFIED, VERIFIED
        else:
            text, state = NOT_VERIFIED, NOT_VERIFIED
        title = "; ".join(f"seed {seed}: {verdict}" + (f" on {date}" if isinstance(date, str) else "")
                          for seed, verdict, date in zip(self.finished_column("seed"), verdicts,
                                                         self.finished_column("verified_date")))
        return Badge(text, state, title or "nothing to verify: no run finished")

    @property
    def code_label(self) -> str:
        """The code fingerprint's first 12 characters (``unrecorded`` without one)."""
        return self.code_fingerprint[:12] if self.code_fingerprint else "unrecorded"

    @cached_property
    def suites(self) -> list[str]:
        return sorted({s for entry in self.column("suites") for s in entry})

    @property
    def date(self) -> pd.Timestamp | None:
        latest = self.pooled.latest_start[self.group]
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
        kinds = {"CPU" if d in (None, "cpu") else "GPU" for d in self.finished_column("device")}
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
    suites: dict[tuple, set] = {}
    for label, run_id, suite in zip(frame["source_label"].tolist(), frame["run_id"].tolist(), frame["suite"].tolist()):
        suites.setdefault((label, run_id), set()).update(() if _missing(suite) else (suite,))
    latest = frame.sort_values("start_time", na_position="first").drop_duplicates(RUN_KEY, keep="last")
    keys = zip(latest["source_label"].tolist(), latest["run_id"].tolist())
    return (latest.assign(suites=[tuple(sorted(suites[key])) for key in keys])
            .sort_values(RUN_KEY).reset_index(drop=True))


def _fingerprints(runs: pd.DataFrame, keys: list[tuple]) -> list[str | None]:
    """Each run's code fingerprint as pooled: the recorded one; a run that recorded none and has no result
    (it failed before its code was fingerprinted) joins its configuration's runs when they all share one."""
    recorded = [None if _missing(f) else f for f in runs.get("code_fingerprint", pd.Series(None, index=runs.index))]
    known: dict[tuple, set[str]] = {}
    for key, fingerprint in zip(keys, recorded):
        if fingerprint is not None:
            known.setdefault(key, set()).add(fingerprint)
    return [fingerprint if fingerprint is not None or state in ("finished", "diverged")
            or len(known.get(key, ())) != 1 else next(iter(known[key]))
            for key, fingerprint, state in zip(keys, recorded, runs["state"])]


def group_configs(frame: pd.DataFrame) -> list[ConfigResult]:
    """Configurations of a runs frame (see ``ConfigResult``: one per configuration, source and code
    fingerprint), sorted by dataset, model, T, variant, local runs before imported ones. The runs are grouped
    once, column-wise (``PooledRuns``)."""
    runs = unique_runs(frame)
    config_columns = _config_columns(runs)
    columns = [[None if _missing(v) else v for v in runs[c].tolist()]
               for c in (*KEY_TAGS, "source_label", *config_columns)]
    keys = list(zip(*columns)) if len(runs) else []
    groups: dict[tuple, int] = {}
    ids = [groups.setdefault((*key, fingerprint), len(groups))
           for key, fingerprint in zip(keys, _fingerprints(runs, keys))]
    ordered = (runs.assign(config_group=ids).sort_values(["config_group", "seed", "run_id"], kind="mergesort")
               .reset_index(drop=True))
    pooled = PooledRuns(ordered.drop(columns="config_group"), ordered["config_group"].to_numpy(dtype=int), len(groups))
    spec_recorded = any(c.startswith("params.spec.") for c in runs.columns)
    results = []
    for key, group in groups.items():
        dataset, model, T, variant, recipe, source = key[:len(KEY_TAGS) + 1]
        config = {c: v for c, v in zip(config_columns, key[len(KEY_TAGS) + 1:-1]) if v is not None}
        results.append(ConfigResult(dataset, model, int(T), variant, recipe, config, pooled, group,
                                    spec_recorded=spec_recorded, source=source, code_fingerprint=key[-1]))
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
