"""benchmarks/scale_store.py: a scale tree of another size, its store cut to the first N runs or grown with copies
that are configurations of their own; bad arguments are one line and exit code 2, with nothing written."""

import importlib.util
import sqlite3
import sys
from pathlib import Path

import pytest

from harness.tracking_sqlite import search_runs_frame

REPO = Path(__file__).parents[2]
RUNS = ["0a" + "0" * 30, "c1" + "1" * 30, "ff" + "2" * 30]  # hex ids as MLflow writes them


def _scale_store():
    spec = importlib.util.spec_from_file_location("scale_store", REPO / "benchmarks" / "scale_store.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tree(root: Path) -> Path:
    """A scale tree whose store has MLflow's tables (the columns reports read) and three runs."""
    (root / "results").mkdir(parents=True)
    with sqlite3.connect(root / "results" / "mlflow.db") as db:
        db.executescript(
            "CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name TEXT, lifecycle_stage TEXT);"
            "CREATE TABLE runs (run_uuid TEXT PRIMARY KEY, status TEXT, start_time INTEGER, end_time INTEGER, "
            "lifecycle_stage TEXT, experiment_id INTEGER, artifact_uri TEXT);"
            "CREATE TABLE tags (key TEXT, value TEXT, run_uuid TEXT, PRIMARY KEY (key, run_uuid));"
            "CREATE TABLE params (key TEXT, value TEXT, run_uuid TEXT, PRIMARY KEY (key, run_uuid));"
            "CREATE TABLE latest_metrics (key TEXT, value REAL, is_nan INTEGER, run_uuid TEXT, "
            "PRIMARY KEY (key, run_uuid));"
            "INSERT INTO experiments VALUES (1, 'spikebench/all', 'active');")
        for i, run in enumerate(RUNS):
            db.execute("INSERT INTO runs VALUES (?, 'FINISHED', ?, ?, 'active', 1, 'x')", (run, i, i + 1))
            db.execute("INSERT INTO tags VALUES ('spikebench.run_id', ?, ?)", (f"r{i}", run))
            db.execute("INSERT INTO params VALUES ('spec.seed', ?, ?)", (str(i), run))
            db.execute("INSERT INTO latest_metrics VALUES ('best_top1', ?, 0, ?)", (90.0 + i, run))
    return root


def _frame(tree: Path):
    return search_runs_frame(f"sqlite:///{tree / 'results' / 'mlflow.db'}", ["1"])


def test_fewer_runs_keep_the_first_started_and_the_rest_is_deleted(tmp_path):
    source = _tree(tmp_path / "src")
    assert _scale_store().resize(source, tmp_path / "two", 2) == 2
    frame = _frame(tmp_path / "two")
    assert sorted(frame["tags.spikebench.run_id"]) == ["r0", "r1"] and len(_frame(source)) == 3


def test_more_runs_are_copies_with_new_ids_each_a_configuration_of_its_own(tmp_path):
    source = _tree(tmp_path / "src")
    assert _scale_store().resize(source, tmp_path / "eight", 8) == 8
    frame = _frame(tmp_path / "eight")
    assert frame["run_id"].is_unique and frame["tags.spikebench.run_id"].is_unique and len(frame) == 8
    assert sorted(frame["tags.spikebench.run_id"]) == sorted(
        ["r0", "r1", "r2", "r0-c1", "r1-c1", "r2-c1", "r0-c2", "r1-c2"])
    copies = frame[frame["tags.spikebench.run_id"].str.contains("-c")]
    assert (copies["params.spec.recipe_overrides.optim.lr"]
            == copies["tags.spikebench.run_id"].str.split("-").str[1]).all()
    assert frame["params.spec.recipe_overrides.optim.lr"].isna().sum() == 3  # the source's runs are unchanged
    by_id = frame.set_index("tags.spikebench.run_id")["metrics.best_top1"]
    assert by_id["r2-c1"] == by_id["r2"] == 92.0


@pytest.mark.parametrize("args, message", [
    (["--runs", "0"], "argument --runs: expected a whole number >= 1, got 0"),
    (["--runs", "5", "--source", "{tmp}/nowhere"], "no results/mlflow.db"),
    (["--runs", "5", "--target", "{tmp}/src"], "exists; expected a new directory"),
])
def test_bad_arguments_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, args, message):
    _tree(tmp_path / "src")
    defaults = {"--source": str(tmp_path / "src"), "--target": str(tmp_path / "new")}
    given = [a.format(tmp=tmp_path) for a in args]
    argv = given + [x for flag, value in defaults.items() if flag not in given for x in (flag, value)]
    try:
        code = _scale_store().main(argv)
    except SystemExit as exit_:  # the parser's own one-line refusal
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_the_command_line_prints_the_new_tree(tmp_path):
    import subprocess

    _tree(tmp_path / "src")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "scale_store.py"), "--source",
                           str(tmp_path / "src"), "--target", str(tmp_path / "new"), "--runs", "4"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"{tmp_path / 'new'}: 4 active runs"
