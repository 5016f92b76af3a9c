"""Incremental ``collect``: only new or changed run directories are read; deleted ones, runs missing from the store
and a corrupt index are handled; the sqlite store read directly gives ``mlflow.search_runs``'s frame."""

import json
import shutil
import warnings
from pathlib import Path

import pytest
from benchmark_scripts import load_script

from harness.atomicfile import atomic_write_text
from harness.collect_index import index_path
from harness.suite import expand, load_suite
from harness.tracking import collect, default_uri, runs_frame

RUNS = 40


def _scale():
    """``benchmarks/scale.py``, which writes synthetic finished runs in the real format."""
    return load_script("scale")


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """40 synthetic runs in 2 suites, collected once into a fresh sqlite store (which writes the index)."""
    base = tmp_path_factory.mktemp("scale")
    _, _, results = _scale().generate(base, RUNS, 2)
    counts = collect(results, default_uri(results))
    assert counts["logged"] == RUNS  # the failed run (one in 33) is logged too
    return base


@pytest.fixture
def results(collected, tmp_path):
    """A private copy of the collected results directory (the store's URI names the copy's file)."""
    root = tmp_path / "results"
    shutil.copytree(collected / "results", root)
    old = index_path(collected / "results", default_uri(collected / "results"), None)
    index = json.loads(old.read_text())
    index["uri"] = default_uri(root)
    index_path(root, default_uri(root), None).write_text(json.dumps(index))  # as if collected here
    return root


@pytest.fixture
def reads(monkeypatch):
    """The run directories whose files are read (every reader of run files goes through read_text/read_bytes)."""
    seen: set[str] = set()
    for name in ("read_text", "read_bytes"):
        original = getattr(Path, name)

        def spy(self, *args, _original=original, **kwargs):
            if self.parent.parent.name == "runs":
                seen.add(self.parent.name)
            elif self.parent.parent.parent.name == "imported":  # imported/<site>/<run_id>/<file>
                seen.add(f"{self.parent.parent.name}/{self.parent.name}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Path, name, spy)
    return seen


def _runs(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / "runs").glob("*/spec.json"))


def _new_run(root: Path, base: Path) -> Path:
    """One more finished run, written like the others."""
    suite = base / "extra.yaml"
    suite.write_text("name: extra\nruns:\n  - {model: sdt_2_512.cifar10, dataset: cifar10, seed: 99}\n")
    spec, = expand(load_suite(suite))
    return _scale().RunWriter(root).write(spec, 0)


def test_nothing_changed_reads_no_run_directory(results, reads):
    counts = collect(results, default_uri(results))
    assert counts == {"logged": 0, "unchanged": RUNS, "merged": 0, "skipped": 0, "malformed": 0}
    assert reads == set()


def test_a_changed_and_a_new_run_are_the_only_ones_read_and_reach_the_store(results, reads, tmp_path):
    changed = _runs(results)[3]
    final = json.loads((changed / "final.json").read_text())
    final["best_top1"] = 12.5
    atomic_write_text(json.dumps(final), changed / "final.json")
    new = _new_run(results, tmp_path)
    reads.clear()
    index_before = index_path(results, default_uri(results), None).read_text()
    planned = collect(results, default_uri(results), dry_run=True)
    assert planned["logged"] == 2 and planned["unchanged"] == RUNS - 1
    assert index_path(results, default_uri(results), None).read_text() == index_before, "a dry run writes nothing"
    reads.clear()
    counts = collect(results, default_uri(results))
    assert counts["logged"] == 2 and counts["unchanged"] == RUNS - 1
    assert reads == {changed.name, new.name}
    frame = runs_frame(default_uri(results)).set_index("run_id")
    assert frame.loc[changed.name, "best_top1"] == 12.5 and new.name in frame.index
    reads.clear()
    assert collect(results, default_uri(results))["unchanged"] == RUNS + 1 and reads == set()


def test_a_deleted_run_leaves_the_index_and_a_run_missing_from_the_store_is_logged_again(results, reads):
    from mlflow.tracking import MlflowClient

    gone, lost = _runs(results)[0], _runs(results)[1]
    shutil.rmtree(gone)
    client = MlflowClient(default_uri(results))
    mlflow_run = runs_frame(default_uri(results)).set_index("run_id").loc[lost.name, "mlflow_run_id"]
    client.delete_run(mlflow_run)
    counts = collect(results, default_uri(results))
    assert counts["logged"] == 1 and counts["unchanged"] == RUNS - 2
    assert reads == {lost.name}
    index = json.loads(index_path(results, default_uri(results), None).read_text())
    assert f"runs/{gone.name}" not in index["runs"] and f"runs/{lost.name}" in index["runs"]
    assert lost.name in set(runs_frame(default_uri(results))["run_id"])


def test_an_imported_copy_is_indexed_apart_from_its_local_run_and_reread_only_when_it_changes(results, reads):
    run = _runs(results)[0]
    copy = results / "imported" / "labA" / run.name
    shutil.copytree(run, copy)
    (copy / "origin.json").write_text(json.dumps({"site": "labA", "bundle_sha256": "0" * 64}))
    assert collect(results, default_uri(results))["logged"] == 1
    assert reads == {f"labA/{run.name}"}
    index = json.loads(index_path(results, default_uri(results), None).read_text())
    assert index["runs"][f"imported/labA/{run.name}"]["source"] == "labA (imported)"
    assert index["runs"][f"runs/{run.name}"]["source"] == "local"
    reads.clear()
    assert collect(results, default_uri(results))["unchanged"] == RUNS + 1 and reads == set()
    (copy / "verification.json").write_text(json.dumps({"verdict": "verified", "date": "2026-12-01T10:00:00Z",
                                                        "images": 8, "disagreements": 0}))
    assert collect(results, default_uri(results))["logged"] == 1 and reads == {f"labA/{run.name}"}


@pytest.mark.parametrize("content", ["{not json", json.dumps({"version": 1, "uri": "sqlite:////elsewhere.db",
                                                                "suite": None, "runs": {}}),
                                     json.dumps({"version": 1, "runs": {"x": {"stamp": 3}}})],
                         ids=["not-json", "another-store", "bad-entry"])
def test_a_corrupt_index_is_a_full_scan_with_one_warning_then_repaired(results, reads, content):
    path = index_path(results, default_uri(results), None)
    path.write_text(content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        counts = collect(results, default_uri(results))
    assert counts["unchanged"] == RUNS and counts["logged"] == 0
    assert [str(w.message) for w in caught if "collect index" in str(w.message) or "index of" in str(w.message)]
    assert reads == {p.name for p in _runs(results)}
    reads.clear()
    assert collect(results, default_uri(results))["unchanged"] == RUNS and reads == set()


def test_the_index_is_kept_per_store_and_suite(tmp_path):
    paths = {index_path(tmp_path, uri, suite) for uri in ("sqlite:///a.db", "sqlite:///b.db") for suite in (None, "x")}
    assert len(paths) == 4 and all(p.parent == tmp_path for p in paths)


def test_the_sqlite_store_read_directly_equals_mlflow_search_runs(results):
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from harness.tracking_sqlite import search_runs_frame

    uri = default_uri(results)
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    client.delete_run(runs_frame(uri)["mlflow_run_id"].iloc[0])  # a deleted run is left out by both
    mlflow.set_tracking_uri(uri)
    expected = mlflow.search_runs(experiment_ids=experiments, output_format="pandas")
    direct = search_runs_frame(uri, experiments)
    assert len(expected) == RUNS - 1
    assert sorted(direct.columns) == sorted(expected.columns)
    pd.testing.assert_frame_equal(direct[expected.columns], expected)


def test_the_active_experiments_read_directly_equal_mlflows(results):
    from mlflow.tracking import MlflowClient

    from harness.tracking_sqlite import active_experiments

    uri = default_uri(results)
    client = MlflowClient(uri)
    client.delete_experiment(client.create_experiment("spikebench/deleted"))  # deleted: left out by both
    client.create_experiment("other/kept")
    expected = sorted(e.experiment_id for e in client.search_experiments())
    assert sorted(active_experiments(uri, lambda name: True)) == expected and len(expected) >= 3
    wanted = sorted(e.experiment_id for e in client.search_experiments() if e.name.startswith("spikebench/"))
    assert sorted(active_experiments(uri, lambda name: name.startswith("spikebench/"))) == wanted
    assert active_experiments("http://127.0.0.1:1", lambda name: True) is None


def test_a_store_that_is_not_sqlite_is_searched_through_mlflow(tmp_path):
    from harness.tracking_sqlite import logged_hashes, search_runs_frame

    assert search_runs_frame("http://127.0.0.1:1", ["0"]) is None and logged_hashes("file:///x", "t.", str) is None
    (tmp_path / "other.db").write_bytes(b"not a database at all")
    assert search_runs_frame(f"sqlite:///{tmp_path / 'other.db'}", ["0"]) is None
