"""The runs a report is made of: ``harness.tracking.runs_frame``'s DataFrame, checked and given clean types."""

from __future__ import annotations

import math
import warnings

import pandas as pd

from harness.report.aggregate import ALWAYS_LOGGED, with_sources
from harness.tracking import FINAL_METRICS, TAG_NAMES, runs_frame

REQUIRED = ("run_id", "suite", "model", "dataset", "T", "seed", "state")
MISSING_TAG_VALUES = {"", "None", "none", "nan", "NaN", "null"}
# Tags without which a run cannot be placed in a table (besides run_id, T and seed, checked on their own).
NAMING_TAGS = ("model", "dataset", "state")
# MLflow stores an infinite metric as the largest float of its sign (sqlite has no infinity).
MLFLOW_INFINITY = 1.7976931348623157e308


def _clean_tags(values: pd.Series) -> pd.Series:
    """A tag or param column as text (object dtype), None where missing or written as a missing value ("None",
    "nan", ...): column-wise, as 10,000 runs of 100 columns are a million cells."""
    text = values.astype(object)
    blank = text.isna()
    text = text.where(blank, text.astype(str))
    return text.where(~(blank | text.isin(MISSING_TAG_VALUES)), None)


def _malformed(frame: pd.DataFrame, column: str) -> pd.Series:
    """Rows whose ``column`` is not an integer: each reported in one warning naming the run, then dropped."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values % 1 != 0)
    for run_id, value, mlflow_id in zip(frame.loc[bad, "run_id"], frame.loc[bad, column],
                                        frame.loc[bad, "mlflow_run_id"]):
        warnings.warn(f"runs frame: run {run_id} (MLflow run {mlflow_id}) has {column}={value!r}, not an "
                      f"integer; skipped", stacklevel=3)
    return bad


def _unnamed(frame: pd.DataFrame) -> pd.Series:
    """Rows missing a tag that names what they measured: each reported in one warning naming the run."""
    bad = frame[list(NAMING_TAGS)].isna().any(axis=1)
    for (_, row) in frame[bad].iterrows():
        missing = ", ".join(tag for tag in NAMING_TAGS if pd.isna(row[tag]))
        warnings.warn(f"runs frame: run {row['run_id']} (MLflow run {row['mlflow_run_id']}) has no {missing} tag; "
                      f"skipped", stacklevel=3)
    return bad


def _metric(values: pd.Series) -> pd.Series:
    """A metric column as floats, MLflow's stand-in for an infinity turned back into one."""
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    return numbers.mask(numbers >= MLFLOW_INFINITY, math.inf).mask(numbers <= -MLFLOW_INFINITY, -math.inf)


def _warn_nonfinite(frame: pd.DataFrame) -> None:
    """One warning per run with an infinite metric, or a NaN where a finished run always logs a number (the rows
    are found column-wise first: looking at each of 10,000 rows costs seconds)."""
    metrics = frame[list(FINAL_METRICS)]
    always = [name for name in FINAL_METRICS if name in ALWAYS_LOGGED]
    odd = metrics.isin([math.inf, -math.inf]).any(axis=1)
    odd |= frame[always].isna().any(axis=1) & (frame["state"] == "finished")
    for _, row in frame[odd].iterrows():
        values = [f"{name}={row[name]}" for name in FINAL_METRICS
                  if math.isinf(row[name]) or (math.isnan(row[name]) and name in ALWAYS_LOGGED
                                               and row["state"] == "finished")]
        warnings.warn(f"runs frame: run {row['run_id']} (MLflow run {row['mlflow_run_id']}) logged non-finite "
                      f"metrics: {', '.join(values)}; shown as such", stacklevel=3)


def _times(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values):
        return pd.to_datetime(values, unit="ms", utc=True, errors="coerce")
    return pd.to_datetime(values, utc=True, errors="coerce")


class UnknownSource(ValueError):
    """``--source`` names no logged run's source (the message is one line)."""


def select_sources(frame: pd.DataFrame, sources: list[str] | None) -> pd.DataFrame:
    """The runs of ``sources`` (each a source label, ``local`` or ``<site> (imported)``, or an imported site's
    name); every run when None or empty. ``UnknownSource`` names a source no run comes from."""
    if not sources:
        return frame
    imported = frame["imported"].astype(bool)
    known = set(frame["source_label"]) | set(frame.loc[imported, "source"])
    unknown = [s for s in sources if s not in known]
    if unknown:
        listed = ", ".join(sorted(set(frame["source_label"]))) or "none"
        raise UnknownSource(f"--source {unknown[0]}: no logged run comes from it; expected one of: {listed}")
    return frame[frame["source_label"].isin(sources) | (imported & frame["source"].isin(sources))]


def load_runs(frame_or_uri: pd.DataFrame | str, suite: str | None = None,
              sources: list[str] | None = None) -> pd.DataFrame:
    """Runs as a DataFrame in ``runs_frame``'s columns (given, or read from a tracking URI), restricted to
    ``suite`` when given: tags and ``params.*`` cleaned ("" and "None" become None), T and seed as int,
    metrics as float (MLflow's stand-in for an infinity back to one; each run with a non-finite metric warned
    about once). A run with a malformed record (no run id, no model, dataset or state tag, a T or seed that is
    not an integer) is skipped with one warning naming it. The source columns are completed by
    ``aggregate.with_sources`` (a run logged before sources were tagged is a local, unverified one); with
    ``sources``, only their runs are kept (``select_sources``)."""
    if isinstance(frame_or_uri, pd.DataFrame):
        frame = frame_or_uri.copy()
    else:
        frame = runs_frame(str(frame_or_uri), suite=suite)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"runs frame lacks the columns {missing}; expected harness.tracking.runs_frame's "
                         f"columns (tags {', '.join(TAG_NAMES)}; metrics {', '.join(FINAL_METRICS)})")
    params = [c for c in frame.columns if str(c).startswith("params.")]
    clean = {column: _clean_tags(frame[column]) if column in frame else pd.Series(None, index=frame.index, dtype=object)
             for column in (*TAG_NAMES, "mlflow_run_id", *params)}
    clean.update({column: _metric(frame[column]) if column in frame
                  else pd.Series(math.nan, index=frame.index) for column in FINAL_METRICS})
    clean["start_time"] = _times(frame["start_time"]) if "start_time" in frame else pd.Series(pd.NaT, index=frame.index)
    others = frame[[c for c in frame.columns if c not in clean]]
    frame = pd.concat([others, pd.DataFrame(clean, index=frame.index)], axis=1)  # one block: no fragmentation
    unnamed = frame["run_id"].isna()
    for mlflow_id in frame.loc[unnamed, "mlflow_run_id"]:
        warnings.warn(f"runs frame: MLflow run {mlflow_id} has no run_id tag; skipped", stacklevel=2)
    frame = frame[~unnamed]
    frame = frame[~_unnamed(frame)]
    frame = frame[~_malformed(frame, "T")]
    frame = frame[~_malformed(frame, "seed")]
    frame = frame.assign(T=pd.to_numeric(frame["T"]).astype(int), seed=pd.to_numeric(frame["seed"]).astype(int))
    if suite is not None:
        frame = frame[frame["suite"] == suite]
    _warn_nonfinite(frame)
    return select_sources(with_sources(frame), sources).reset_index(drop=True)
