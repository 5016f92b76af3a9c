"""End to end through a real MLflow store: runs logged with the tracking contract's tags, params and final
metrics into a temporary sqlite database, read back by ``harness.tracking.runs_frame``, rendered."""

import math

import pytest

from harness.report import render_leaderboard, render_tables
from harness.tracking import FINAL_METRICS, TAG, TAG_NAMES, runs_frame
from report_runs import fixture_runs


def _log(client, row: dict) -> None:
    from mlflow.entities import Metric, Param

    name = f"spikebench/{row['suite']}"
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    tags = {TAG + k: str(row[k]) for k in TAG_NAMES if row.get(k) is not None}
    run = client.create_run(experiment_id, run_name=row["run_id"], tags=tags)
    metrics = [Metric(k, float(row[k]), 0, 0) for k in FINAL_METRICS
               if row.get(k) is not None and not math.isnan(row[k])]
    params = [Param(k.removeprefix("params."), v) for k, v in row.items() if k.startswith("params.")]
    client.log_batch(run.info.run_id, metrics=metrics, params=params)
    client.set_terminated(run.info.run_id, status="FINISHED" if row["state"] == "finished" else "FAILED")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    for row in fixture_runs().to_dict("records"):
        _log(client, row)
    return uri


def test_tables_from_mlflow_equal_tables_from_the_same_runs(store, tmp_path):
    read = runs_frame(store, suite="paper")
    assert sorted(read["run_id"]) == sorted(fixture_runs().query("suite == 'paper'")["run_id"])
    expected = fixture_runs()
    expected = expected[[c for c in expected.columns if not c.startswith("params.") or c in read.columns]]
    from_store = render_tables(store, "paper", tmp_path / "store")
    from_frame = render_tables(expected, "paper", tmp_path / "frame")
    for name, path in from_store.items():
        assert path.read_text() == from_frame[name].read_text(), name
    assert ("| MSViT | 7.59 | 7.59 | 4 | 81.98 | 81.87 ± 0.25 | 81.57 ± 0.25 | 3 (+1 diverged: loss is nan at "
            "epoch 12) | \\[81.11, 82.62\\] | -0.11 | inconclusive (1 of 4 seeds diverged) | 64§ |"
            ) in from_store["table2.md"].read_text()  # the interval floored by the sampling error on 10,000 images


def test_leaderboard_from_mlflow(store, tmp_path):
    page = render_leaderboard(store, tmp_path / "leaderboard" / "index.html").read_text()
    # one row per configuration (the shared run counted once), and the controlled comparison's three again
    assert page.count('<tbody id="d') == 18 + 3
    assert "python -m harness run suites/other.yaml --only sdt384s0" in page
