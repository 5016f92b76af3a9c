"""Reading a sqlite MLflow store in a few SQL queries, for the runs of thousands of run directories.

``mlflow.search_runs`` builds a Run entity per run and pages 1,000 runs at a time (10,000 runs: most of a report's
time). Here the same rows come from MLflow's own tables (``runs``, ``experiments``, ``tags``, ``params``,
``latest_metrics``: MLflow's ``SqlAlchemyStore`` schema, read-only) in one query each, in ``search_runs``'s
pandas format: active runs of active experiments, newest first, ``metrics.*`` the latest value of each metric
(NaN where MLflow recorded a NaN), ``params.*``, ``tags.*``. A store that is not sqlite, or whose tables are not
these, returns None: the caller uses ``mlflow.search_runs``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

SQLITE = "sqlite:///"
NEEDED = {"runs": {"run_uuid", "status", "start_time", "end_time", "lifecycle_stage", "experiment_id",
                   "artifact_uri"},
          "experiments": {"experiment_id", "name", "lifecycle_stage"}, "tags": {"key", "value", "run_uuid"},
          "params": {"key", "value", "run_uuid"}, "latest_metrics": {"key", "value", "is_nan", "run_uuid"}}


# MLflow's tables of per-run values: the column prefix of ``search_runs``'s frame and the value read.
TABLES = (("latest_metrics", "metrics.", "CASE WHEN is_nan THEN NULL ELSE value END"), ("params", "params.", "value"),
          ("tags", "tags.", "value"))


def database_path(uri: str) -> Path | None:
    """The sqlite file of a ``sqlite:///`` tracking URI, or None for any other store."""
    return Path(uri[len(SQLITE):]) if uri.startswith(SQLITE) else None


def _connect(uri: str) -> sqlite3.Connection | None:
    """A read-only connection to the store's file when it is an MLflow sqlite store with the tables read here."""
    path = database_path(uri)
    if path is None or not path.is_file():
        return None
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        for table, columns in NEEDED.items():
            found = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
            if not columns <= found:
                connection.close()
                return None
    except sqlite3.DatabaseError:
        connection.close()
        return None
    return connection


def _placeholders(values: Iterable) -> str:
    return ",".join("?" for _ in values)


def active_experiments(uri: str, wanted: Callable[[str], bool]) -> list[str] | None:
    """The ids of the store's active experiments whose name ``wanted`` accepts (``client.search_experiments()``'s,
    without importing MLflow); None when ``uri`` is not a sqlite MLflow store."""
    connection = _connect(uri)
    if connection is None:
        return None
    with contextlib.closing(connection):
        rows = connection.execute("SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active'")
        return [str(experiment_id) for experiment_id, name in rows if wanted(name)]


def search_runs_frame(uri: str, experiment_ids: list[str]):
    """``mlflow.search_runs(experiment_ids, output_format="pandas")``'s frame for a sqlite store, read in one
    query per table; None when ``uri`` is not such a store."""
    import pandas as pd

    connection = _connect(uri)
    if connection is None:
        return None
    with contextlib.closing(connection):
        ids = [str(i) for i in experiment_ids]
        runs = connection.execute(
            f"SELECT r.run_uuid, r.experiment_id, r.status, r.artifact_uri, r.start_time, r.end_time FROM runs r "
            f"JOIN experiments e ON e.experiment_id = r.experiment_id WHERE r.lifecycle_stage = 'active' "
            f"AND e.lifecycle_stage = 'active' AND CAST(r.experiment_id AS TEXT) IN ({_placeholders(ids)}) "
            f"ORDER BY r.start_time DESC, r.run_uuid", ids).fetchall()
        cells = [(prefix, connection.execute(
            f"SELECT t.run_uuid, t.key, {value} FROM {table} t JOIN runs r ON r.run_uuid = t.run_uuid "
            f"WHERE r.lifecycle_stage = 'active' AND CAST(r.experiment_id AS TEXT) IN ({_placeholders(ids)})",
            ids).fetchall()) for table, prefix, value in TABLES]
    order = [row[0] for row in runs]
    frame = pd.DataFrame(runs, columns=["run_id", "experiment_id", "status", "artifact_uri", "start_time",
                                        "end_time"])
    frame["experiment_id"] = frame["experiment_id"].astype(str)
    for name in ("start_time", "end_time"):
        frame[name] = pd.to_datetime(frame[name], unit="ms", utc=True)
    extra = {}
    for prefix, rows in cells:
        extra.update(_wide(rows, prefix, order))
    extra = {name: extra[name] for name in sorted(extra)}
    return pd.concat([frame, pd.DataFrame(extra, index=frame.index)], axis=1)


def _wide(rows: list[tuple], prefix: str, order: list[str]) -> dict:
    """(run, key, value) rows as one column per key, ``prefix`` + key, in the runs' ``order`` (a pivot: the rows
    of 10,000 runs are a million cells); metrics as floats, the others as ``pd.Series`` infers from the values."""
    import pandas as pd

    if not rows:
        return {}
    wide = pd.DataFrame(rows, columns=["run", "key", "value"]).pivot(index="run", columns="key", values="value")
    wide = wide.reindex(order)
    if prefix == "metrics.":
        return {prefix + key: pd.Series(wide[key].to_numpy(dtype=float)) for key in wide.columns}
    return {prefix + key: pd.Series(wide[key].tolist()) for key in wide.columns}


class LoggedRun(NamedTuple):
    """One active MLflow run of a run id as ``collect`` needs it: its MLflow run id, status and content-hash tag."""

    mlflow_run_id: str
    status: str
    content_hash: str | None


LoggedRuns = dict[tuple[str, str, str], list[LoggedRun]]  # (experiment name, run id, source) -> its runs, oldest first


def logged_hashes(uri: str, tag_prefix: str, source_of: Callable[[dict[str, str]], str],
                  experiment: str | None = None, run_id: str | None = None) -> LoggedRuns | None:
    """Every active MLflow run of the active ``spikebench/`` experiments (of the experiment named ``experiment``
    with the run id tag ``run_id``, when given) as (experiment name, run id tag, source) -> its ``LoggedRun``s,
    oldest first, where ``source_of`` names a run's source from its ``source`` and ``imported`` tags (those
    present); None when ``uri`` is not a sqlite MLflow store."""
    connection = _connect(uri)
    if connection is None:
        return None
    names = [tag_prefix + name for name in ("run_id", "content_hash", "source", "imported")]
    only = [(clause, value) for clause, value in (("e.name = ?", experiment), ("ids.value = ?", run_id))
            if value is not None]
    with contextlib.closing(connection):
        rows = connection.execute(
            "SELECT e.name, ids.value, r.run_uuid, r.status, hashes.value, sources.value, imported.value FROM runs r "
            "JOIN experiments e ON e.experiment_id = r.experiment_id "
            "JOIN tags ids ON ids.run_uuid = r.run_uuid AND ids.key = ? "
            "LEFT JOIN tags hashes ON hashes.run_uuid = r.run_uuid AND hashes.key = ? "
            "LEFT JOIN tags sources ON sources.run_uuid = r.run_uuid AND sources.key = ? "
            "LEFT JOIN tags imported ON imported.run_uuid = r.run_uuid AND imported.key = ? "
            "WHERE r.lifecycle_stage = 'active' AND e.lifecycle_stage = 'active' AND e.name LIKE 'spikebench/%' "
            + "".join(f"AND {clause} " for clause, _ in only) + "ORDER BY r.start_time, r.run_uuid",
            [*names, *(value for _, value in only)]).fetchall()
    logged: LoggedRuns = {}
    for name, run, mlflow_run, status, content_hash, source, imported in rows:
        tags = {tag: value for tag, value in zip(names[2:], (source, imported)) if value is not None}
        logged.setdefault((name, run, source_of(tags)), []).append(LoggedRun(mlflow_run, status, content_hash))
    return logged
