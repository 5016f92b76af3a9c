"""A scale tree of another size made from one that ``benchmarks/scale.py`` filled, for timing ``report`` and
``leaderboard`` where filling a store through ``collect`` would take hours (about 1 s per run on a loaded 2-core
machine): the run directories stay those of the source; only its MLflow sqlite store changes.

- ``--runs N`` below the source's count keeps the N runs that started first and marks the others deleted, as
  ``mlflow.delete_run`` does (reports read active runs only).
- ``--runs N`` above it adds copies of the source's runs in SQL (runs, params, tags, latest metrics): copy k of a
  run has a new MLflow run id, its ``run_id`` tag suffixed ``-c<k>`` and a ``spec.recipe_overrides.optim.lr``
  param ``c<k>``, so that each copy is a configuration of its own (about N/3 leaderboard rows, as in the source).

    python benchmarks/scale_store.py --source /dev/shm/s3k --target /dev/shm/s10k --runs 10000
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

from harness.argtypes import OneLineParser, positive_int

STORE = Path("results") / "mlflow.db"
COPIED_TABLES = ("runs", "latest_metrics", "params", "tags")
RUN_ID_TAG = "spikebench.run_id"
COPY_PARAM = "spec.recipe_overrides.optim.lr"


class ScaleStoreError(Exception):
    """A bad argument (the message is one line)."""


def _active_runs(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute(
        "SELECT run_uuid FROM runs WHERE lifecycle_stage = 'active' ORDER BY start_time, run_uuid")]


def _keep_first(db: sqlite3.Connection, runs: list[str], count: int) -> None:
    db.executemany("UPDATE runs SET lifecycle_stage = 'deleted' WHERE run_uuid = ?", [(r,) for r in runs[count:]])


def _add_copies(db: sqlite3.Connection, runs: list[str], count: int) -> None:
    """Copies of ``runs`` (in order, as many rounds as needed) until ``count`` runs are active."""
    db.execute("CREATE TEMP TABLE chosen (run_uuid TEXT PRIMARY KEY)")
    missing, k = count - len(runs), 0
    while missing > 0:
        k += 1
        chosen = runs[:missing]
        missing -= len(chosen)
        db.execute("DELETE FROM chosen")
        db.executemany("INSERT INTO chosen VALUES (?)", [(r,) for r in chosen])
        new_id = f"'x{k}' || substr(run_uuid, 3)"  # 'x' is no hex digit: no copy can take a source run's id
        for table in COPIED_TABLES:
            names = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            values = ", ".join(new_id if name == "run_uuid" else name for name in names)
            db.execute(f"INSERT INTO {table} ({', '.join(names)}) SELECT {values} FROM {table} "
                       "WHERE run_uuid IN (SELECT run_uuid FROM chosen)")
        db.execute("UPDATE tags SET value = value || ? WHERE key = ? AND run_uuid LIKE ?",
                   (f"-c{k}", RUN_ID_TAG, f"x{k}%"))
        db.execute(f"INSERT INTO params (key, value, run_uuid) SELECT ?, ?, {new_id} FROM chosen",
                   (COPY_PARAM, f"c{k}"))


def resize(source: Path, target: Path, count: int) -> int:
    """Write ``target``: a copy of the scale tree ``source`` whose store has ``count`` active runs; returns it.
    The tree is built beside ``target`` and renamed into place, so a failure leaves nothing half-written."""
    if count < 1:
        raise ScaleStoreError(f"--runs {count}: expected a positive number of runs")
    if not (source / STORE).is_file() or (source / STORE).is_symlink():
        raise ScaleStoreError(f"--source {source}: no {STORE} (a tree written by benchmarks/scale.py --keep)")
    if target.exists() or target.is_symlink():
        raise ScaleStoreError(f"--target {target}: exists; expected a new directory")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as scratch:
        built = Path(scratch) / "tree"
        shutil.copytree(source, built, symlinks=True)
        with sqlite3.connect(built / STORE) as db:
            runs = _active_runs(db)
            if count <= len(runs):
                _keep_first(db, runs, count)
            else:
                _add_copies(db, runs, count)
            active = len(_active_runs(db))
        db.close()
        built.rename(target)
    return active


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="benchmarks/scale_store.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, type=Path, help="a tree of benchmarks/scale.py --keep")
    parser.add_argument("--target", required=True, type=Path, help="the new tree (must not exist)")
    parser.add_argument("--runs", required=True, type=positive_int, help="active runs of the new tree's store")
    args = parser.parse_args(argv)
    try:
        active = resize(args.source, args.target, args.runs)
    except ScaleStoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.target}: {active} active runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
