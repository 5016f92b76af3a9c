"""End to end through a real MLflow store: runs logged with the tracking contract's tags, params and final
metrics into a temporary sqlite database, read back by ``harness.tracking.runs_frame``, rendered."""

import math
import re

import pytest

from harness.engine.provenance import code_fingerprint
from harness.report import render_leaderboard, render_tables
from harness.report.leaderboard import unpacked
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


def _board_rows(page: str) -> list[list]:
    """Every table row of a leaderboard page, from the data its script pages through (see ``board_data``)."""
    found = re.findall(r'<script type="application/gzip" class="board-data"[^>]*>(.*?)</script>', page, flags=re.S)
    return [row for data in found for row in unpacked(data)["rows"]]


def test_leaderboard_from_mlflow(store, tmp_path):
    page = render_leaderboard(store, tmp_path / "leaderboard" / "index.html").read_text()
    # one row per configuration (the shared run counted once), and the controlled comparison's three again
    rows = _board_rows(page)
    assert len(rows) == 18 + 3
    commands = {run[7] for row in rows for run in row[5][2]}  # each row's provenance: its runs' commands
    assert "python -m harness run suites/other.yaml --only sdt384s0" in commands


@pytest.fixture(scope="module")
def malformed_store(tmp_path_factory):
    """A real store holding good runs, runs without model/dataset tags or with a T that is no number, and
    finished runs whose metrics are infinite or NaN (MLflow keeps a NaN, and stores an infinity as float max)."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('malformed') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    good = fixture_runs().query("suite == 'paper'").to_dict("records")
    for row in good:
        _log(client, row)
    broken = [dict(good[0], run_id="nomodel0", model=None), dict(good[0], run_id="nodata0", dataset=None),
              dict(good[0], run_id="badT0", T="four")]
    for row in broken:
        _log(client, row)
    odd = {"infrun0": ("sdt_8_512.in1k", math.inf), "nanrun0": ("sdt_8_768.in1k", math.nan)}
    for run_id, (model, value) in odd.items():
        row = dict(good[0], run_id=run_id, model=model, best_top1=None, top1=None, params=None,
                   code_fingerprint=code_fingerprint(model, good[0]["recipe"]))  # current: no stale mark
        _log(client, row)
        logged = client.search_runs([client.get_experiment_by_name("spikebench/paper").experiment_id],
                                    filter_string=f"tags.`{TAG}run_id` = '{run_id}'")[0]
        client.log_batch(logged.info.run_id, metrics=[Metric("best_top1", value, 0, 0), Metric("top1", value, 0, 0)])
    return uri


def test_malformed_and_non_finite_runs_are_named_skipped_or_shown_as_such(malformed_store, tmp_path):
    with pytest.warns(UserWarning) as caught:
        paths = render_tables(malformed_store, "paper", tmp_path)
        render_leaderboard(malformed_store, tmp_path / "index.html")
    messages = [str(w.message) for w in caught]
    for run_id, what in (("nomodel0", "no model tag"), ("nodata0", "no dataset tag"), ("badT0", "T='four'"),
                         ("infrun0", "best_top1=inf"), ("nanrun0", "best_top1=nan")):
        assert any(run_id in m and what in m for m in messages), (run_id, messages)
    table1 = paths["table1.md"].read_text()
    inf_row = next(line for line in table1.splitlines() if line.startswith("| SDT | 8-512 |"))
    nan_row = next(line for line in table1.splitlines() if line.startswith("| SDT | 8-768 |"))
    assert "| 29.69 | 4.50 |" in inf_row  # params from the zoo: the run logged none
    assert "| inf | inf | 1 |" in inf_row and "1.797" not in table1  # not MLflow's 309-digit stand-in
    assert "| nan | nan | 0 |" in nan_row
    for row in (inf_row, nan_row):  # a seed without a finite result is a diverged one
        assert "not reproduced (1 of 1 seeds diverged)" in row
    page = (tmp_path / "index.html").read_text()
    texts = {cell[0] for row in _board_rows(page) for cell in row[4]}
    assert "inf (n=1)" in texts and "nan" in texts
    assert "nomodel0" not in page and "badT0" not in page and "179769313486" not in page
