"""Golden-file tests of the paper tables rendered from a fixed set of runs (``report_runs.fixture_runs``).

After an intended change of the output, regenerate the golden files with
``SPIKEBENCH_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/harness/report/test_report_tables.py`` and review
the diff."""

import os
from pathlib import Path

import pandas as pd
import pytest

from harness.report.tables import RECORD_COLUMNS, render_tables
from report_runs import fixture_runs

GOLDEN = Path(__file__).parent / "golden"
FILES = [f"{table}.{ext}" for table in ("table1", "table2", "table3", "other") for ext in ("md", "tex", "csv")]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return render_tables(fixture_runs(), "paper", tmp_path_factory.mktemp("tables"))


@pytest.mark.parametrize("name", [*FILES, "report.md"])
def test_table_matches_golden_file(rendered, name):
    text = rendered[name].read_text()
    golden = GOLDEN / name
    if os.environ.get("SPIKEBENCH_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), f"{name} differs from {golden}"


def test_files_land_in_the_suite_folder(rendered):
    assert sorted(rendered) == sorted([*FILES, "report.md"])
    assert {p.parent.name for p in rendered.values()} == {"paper"}


def test_csv_traces_every_measured_cell_to_its_runs(rendered):
    table = pd.read_csv(rendered["table2.csv"], keep_default_na=False)
    assert tuple(table.columns) == RECORD_COLUMNS
    msvit = table[(table["row"] == "MSViT") & (table["dataset"] == "cifar100")].iloc[0]
    assert msvit["run_ids"] == "c100s0 c100s1 c100s2" and msvit["unfinished_runs"] == 1
    assert float(msvit["top1_mean"]) == pytest.approx((82.1 + 81.6 + 81.9) / 3)
    assert msvit["verdict"] == "reproduced"
    measured = table[table["top1_n"] > 0]
    assert all(len(ids.split()) == n for ids, n in zip(measured["run_ids"], measured["top1_n"]))


def test_a_row_never_disappears(tmp_path):
    """Without any run, every claimed row is still there, marked not run yet (or claim only)."""
    empty = fixture_runs().iloc[0:0]
    paths = render_tables(empty, "paper", tmp_path)
    with_runs = render_tables(fixture_runs(), "paper", tmp_path / "with")
    for name in ("table1.csv", "table2.csv", "table3.csv"):
        bare = pd.read_csv(paths[name], keep_default_na=False)
        full = pd.read_csv(with_runs[name], keep_default_na=False)
        assert set(bare["verdict"]) <= {"not run yet", "claim only"}
        assert set(zip(bare["row"], bare["dataset"])) == set(zip(full["row"], full["dataset"]))
    assert pd.read_csv(paths["other.csv"]).empty


def test_suite_filter_and_unsafe_suite_names(tmp_path):
    paths = render_tables(fixture_runs(), "other", tmp_path)
    table1 = pd.read_csv(paths["table1.csv"], keep_default_na=False)
    sdt = table1[table1["row"] == "SDT 8-384"].iloc[0]
    assert sdt["run_ids"] == "sdt384s0" and sdt["verdict"] == "not reproduced"
    assert table1[table1["row"] == "MSViT 10-768"].iloc[0]["verdict"] == "not run yet"
    assert render_tables(fixture_runs(), "../x y", tmp_path)["report.md"].parent == tmp_path / "x_y"
