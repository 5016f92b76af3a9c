"""The runs a report is made of: ``harness.tracking.runs_frame``'s DataFrame, checked and given clean types."""

from __future__ import annotations

import math

import pandas as pd

from harness.tracking import FINAL_METRICS, TAG_NAMES, runs_frame

REQUIRED = ("run_id", "suite", "model", "dataset", "T", "seed", "state")
MISSING_TAG_VALUES = {"", "None", "none", "nan", "NaN", "null"}


def _clean_tag(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return None if text in MISSING_TAG_VALUES else text


def _integers(frame: pd.DataFrame, column: str) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = frame.loc[values.isna() | (values % 1 != 0), "run_id"].tolist()
    if bad:
        raise ValueError(f"runs frame: column {column!r} must hold integers; runs {bad} have "
                         f"{frame.loc[frame['run_id'].isin(bad), column].tolist()}")
    return values.astype(int)


def _times(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values):
        return pd.to_datetime(values, unit="ms", utc=True)
    return pd.to_datetime(values, utc=True)


def load_runs(frame_or_uri: pd.DataFrame | str, suite: str | None = None) -> pd.DataFrame:
    """Runs as a DataFrame in ``runs_frame``'s columns (given, or read from a tracking URI), restricted to
    ``suite`` when given: tags and ``params.*`` cleaned ("" and "None" become None), T and seed as int,
    metrics as float."""
    if isinstance(frame_or_uri, pd.DataFrame):
        frame = frame_or_uri.copy()
    else:
        frame = runs_frame(str(frame_or_uri), suite=suite)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"runs frame lacks the columns {missing}; expected harness.tracking.runs_frame's "
                         f"columns (tags {', '.join(TAG_NAMES)}; metrics {', '.join(FINAL_METRICS)})")
    params = [c for c in frame.columns if str(c).startswith("params.")]
    for column in (*TAG_NAMES, "mlflow_run_id", *params):
        values = [_clean_tag(v) for v in frame[column]] if column in frame else [None] * len(frame)
        frame[column] = pd.Series(values, index=frame.index, dtype=object)
    for column in FINAL_METRICS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce") if column in frame else math.nan
    frame["start_time"] = _times(frame["start_time"]) if "start_time" in frame else pd.NaT
    unnamed = frame.loc[frame["run_id"].isna()].index.tolist()
    if unnamed:
        raise ValueError(f"runs frame: rows {unnamed} have no run_id tag")
    frame["T"] = _integers(frame, "T")
    frame["seed"] = _integers(frame, "seed")
    if suite is not None:
        frame = frame[frame["suite"] == suite]
    return frame.reset_index(drop=True)
