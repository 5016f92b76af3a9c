"""Golden-file tests of the paper tables rendered from a fixed set of runs (``report_runs.fixture_runs``).

The test only reads the golden files: after an intended change of the output, regenerate them with
``tests/harness/report/regenerate_golden.py`` and review the diff."""

import re
from pathlib import Path

import pandas as pd
import pytest

from harness.report.claims import load_claims
from harness.report.tables import RECORD_COLUMNS, build_table, columns, render_tables
from harness.suite import Margins
from report_runs import fixture_runs, run

GOLDEN = Path(__file__).parent / "golden"
TABLES = ("table1", "table2", "table3", "table4", "controlled", "other")
FILES = [f"{table}.{ext}" for table in TABLES for ext in ("md", "tex", "csv")]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return render_tables(fixture_runs(), "paper", tmp_path_factory.mktemp("tables"))


@pytest.mark.parametrize("name", [*FILES, "report.md"])
def test_table_matches_golden_file(rendered, name):
    text = rendered[name].read_text()
    golden = GOLDEN / name
    assert text == golden.read_text(), f"{name} differs from {golden} (see regenerate_golden.py)"


def test_files_land_in_the_suite_folder(rendered):
    assert sorted(rendered) == sorted([*FILES, "report.md"])
    assert {p.parent.name for p in rendered.values()} == {"paper"}


def test_csv_traces_every_measured_cell_to_its_runs(rendered):
    table = pd.read_csv(rendered["table2.csv"], keep_default_na=False)
    assert tuple(table.columns) == RECORD_COLUMNS
    msvit = table[(table["row"] == "MSViT") & (table["dataset"] == "cifar100")].iloc[0]
    assert msvit["run_ids"] == "c100s0 c100s1 c100s2" and msvit["unfinished_runs"] == 1
    assert msvit["outcome"] == "1 diverged: loss is nan at epoch 12"
    assert float(msvit["top1_best_mean"]) == pytest.approx((82.1 + 81.6 + 81.9) / 3)
    assert float(msvit["top1_last_mean"]) == pytest.approx((81.8 + 81.3 + 81.6) / 3)
    assert msvit["top1_compared"] == "best epoch" and msvit["best_epochs"] == "9 9 9"
    assert msvit["verdict"] == "inconclusive (1 of 4 seeds diverged)" and float(msvit["top1_margin"]) == 0.5
    assert msvit["top1_n_test"] == "10000"  # the CIFAR100 test split the runs were evaluated on
    assert (msvit["eval_batch"], msvit["batch_dependent"]) == ("64", "True")
    measured = table[table["top1_n"] > 0]
    assert all(len(ids.split()) == n for ids, n in zip(measured["run_ids"], measured["top1_n"]))


def test_verdict_columns_show_interval_and_margin(rendered):
    table1 = pd.read_csv(rendered["table1.csv"], keep_default_na=False).set_index("row")
    qk, msvit = table1.loc["QKFormer 10-384"], table1.loc["MSViT 10-768"]
    assert (qk["verdict"], msvit["verdict"], table1.loc["MSViT 10-512", "verdict"]) == (
        "not reproduced", "reproduced", "single run")
    # the t half-width (0.248) is narrower than the sampling error of a top-1 of 77.9% on 50,000 images
    p = (0.779 * 50_000 + 2) / 50_004
    floor = 1.959964 * 100 * (p * (1 - p) / 50_000) ** 0.5
    assert floor == pytest.approx(0.3637, abs=1e-4)
    assert (float(qk["top1_ci_low"]), float(qk["top1_ci_high"])) == (pytest.approx(77.9 - floor, abs=1e-4),
                                                                    pytest.approx(77.9 + floor, abs=1e-4))
    assert float(msvit["energy_margin_mj"]) == pytest.approx(4.588) and msvit["energy_verdict"] == "reproduced"
    assert float(msvit["ops_energy_mj_mean"]) == pytest.approx(1.25 * 45.3)
    assert float(msvit["effective_acs_mean"]) == 3e8 and float(msvit["footprint_bytes_mean"]) == 4 * 69_802_408
    markdown = rendered["table1.md"].read_text()
    assert r"| 77.90 ± 0.10 | 77.60 ± 0.10 | 3 | \[77.54, 78.26\] | -0.90 | not reproduced |" in markdown
    assert "Top-1 (%) verdict (±0.5)" in markdown and "Energy (mJ) verdict (±10%)" in markdown
    assert "best epoch's top-1" in markdown and "sampling error of a top-1" in markdown
    assert "shared/" not in markdown  # users have no copy of the project's private notes


def test_margins_come_from_the_suite(tmp_path):
    from harness.suite import Margins

    paths = render_tables(fixture_runs(), "paper", tmp_path, Margins(top1=2.0, energy=0.001))
    table1 = pd.read_csv(paths["table1.csv"], keep_default_na=False).set_index("row")
    assert table1.loc["QKFormer 10-384", "verdict"] == "reproduced"
    assert table1.loc["MSViT 10-768", "energy_verdict"] == "not reproduced"  # [44.80, 45.80] vs 45.88 +- 0.05
    assert "verdict (±2)" in paths["table1.md"].read_text()


def test_diverged_batch_dependent_and_shrunk_runs_are_shown(rendered):
    table2 = rendered["table2.md"].read_text()
    assert "| 3 (+1 diverged: loss is nan at epoch 12) |" in table2 and "not finished" not in table2
    assert "| 64§ |" in table2 and "§ batch-dependent" in table2
    other = pd.read_csv(rendered["other.csv"], keep_default_na=False).set_index("run_ids")
    assert other.loc["tinyqk0", "variant"] == "depths=[1, 1, 1], widths=[16, 32, 64]"
    assert r"| CIFAR10 | qkformer_4_384.cifar10 | 4 | depths=\[1, 1, 1\], widths=\[16, 32, 64\] |" in (
        rendered["other.md"].read_text())


def test_table4_renders_the_new_families_claims_with_their_sources(rendered):
    table4 = pd.read_csv(rendered["table4.csv"], keep_default_na=False)
    ti = table4[table4["row"] == "SpikingResformer-Ti"].iloc[0]
    assert (ti["run_ids"], ti["verdict"], ti["params_verdict"]) == ("resti0 resti1 resti2", "reproduced",
                                                                    "reproduced")
    assert ti["paper"].startswith("SpikingResformer") and "checked against the paper's text" in ti["note"]
    tistar = table4[(table4["row"] == "SpikingResformer-Ti*") & (table4["dataset"] == "cifar100")].iloc[0]
    assert (tistar["run_ids"], tistar["verdict"]) == ("restic100s0", "no claim")
    markdown = rendered["table4.md"].read_text()
    assert [line for line in markdown.splitlines() if line.startswith("## ")] == [
        "## ImageNet-1K", "## CIFAR10", "## CIFAR100", "## DVS128 Gesture", "## CIFAR10-DVS"]  # panels from the file
    assert "paper: Scaling Spike-driven Transformer" in markdown and "Source of E-SpikeFormer 5.1M, E-SpikeFormer 10M," in markdown
    assert "spikingresformer_tistar.cifar100" not in rendered["other.md"].read_text()


def test_controlled_table_has_one_row_per_family_and_states_its_recipe(tmp_path):
    paths = render_tables(fixture_runs(), "controlled", tmp_path)
    table = pd.read_csv(paths["controlled.csv"], keep_default_na=False)
    assert list(zip(table["dataset"], table["method"])) == [
        ("cifar100", "msvit"), ("cifar100", "sdtv3"), ("dvs128", "spikingresformer")]
    assert table["run_ids"].tolist() == ["ctlms0 ctlms1 ctlms2", "ctlv30 ctlv31 ctlv32", "ctlresg0"]
    assert float(table["top1_ci_low"][0]) < 78.2 < float(table["top1_ci_high"][0])
    markdown = paths["controlled.md"].read_text()
    assert "| CIFAR100 | sdtv3 | sdtv3_5m.in1k | 9.20 | 78.20 ± 0.20 | 3 |" in markdown
    assert "CIFAR100: recipe qkformer_cifar, T=4; DVS128 Gesture: recipe qkformer_dvs128, T=4" in markdown
    assert pd.read_csv(paths["other.csv"]).empty  # controlled runs are not repeated among the others


def test_a_row_never_disappears(tmp_path):
    """Without any run, every claimed row is still there, marked not run yet (or claim only)."""
    empty = fixture_runs().iloc[0:0]
    paths = render_tables(empty, "paper", tmp_path)
    with_runs = render_tables(fixture_runs(), "paper", tmp_path / "with")
    for name in ("table1.csv", "table2.csv", "table3.csv", "table4.csv"):
        bare = pd.read_csv(paths[name], keep_default_na=False)
        full = pd.read_csv(with_runs[name], keep_default_na=False)
        assert set(bare["verdict"]) <= {"not run yet", "claim only", "no claim"}
        assert set(zip(bare["row"], bare["dataset"])) == set(zip(full["row"], full["dataset"]))
    assert pd.read_csv(paths["other.csv"]).empty


def test_suite_filter_and_unsafe_suite_names(tmp_path):
    paths = render_tables(fixture_runs(), "other", tmp_path)
    table1 = pd.read_csv(paths["table1.csv"], keep_default_na=False)
    sdt = table1[table1["row"] == "SDT 8-384"].iloc[0]
    assert sdt["run_ids"] == "sdt384s0" and sdt["verdict"] == "single run"
    assert table1[table1["row"] == "MSViT 10-768"].iloc[0]["verdict"] == "not run yet"
    assert render_tables(fixture_runs(), "../x y", tmp_path)["report.md"].parent == tmp_path / "x_y"


def test_margins_are_read_from_the_suite_file(tmp_path):
    from harness.suite import SuiteError, load_suite

    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmargins: {top1: 1.5}\nruns: []\n")
    margins = load_suite(path).margins
    assert (margins.top1, margins.energy) == (1.5, 0.10)
    notes = "\n".join(build_table("table1", load_claims(), [], margins).display.notes)
    assert ("Margins: top-1 ±1.5 points (the suite's margins.top1), energy ±10% of the claim (the default: the "
            "suite sets no margins.energy)") in notes
    path.write_text("name: s\nmargins: {top1: -1}\nruns: []\n")
    with pytest.raises(SuiteError, match="margins.top1"):
        load_suite(path)


def test_markdown_shows_hostile_names_as_text(tmp_path):
    """Raw HTML, links and pipes in any name reach the Markdown as literal text, never as markup or cells."""
    xss, link = "<script>alert(1)</script>", "[x](javascript:alert(2))"
    evil = run("evil0", "sdt_2_512.cifar10", "digits", 4, 0, 50.0, suite=xss, variant=f"a|b {link} <img src=x>")
    evil["model"] = f"m|<b>{xss}</b>"
    paths = render_tables(pd.concat([fixture_runs(), pd.DataFrame([evil])], ignore_index=True), None, tmp_path)
    for name in ("other.md", "report.md"):
        text = paths[name].read_text()
        assert "<" not in text and ">" not in text  # every angle bracket became an entity
        assert re.search(r"(?<!\\)\]\(", text) is None  # no link syntax survives
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    row = next(line for line in paths["other.md"].read_text().splitlines() if "script" in line)
    assert len(re.split(r"(?<!\\)\|", row)) == len(columns("other", Margins())) + 2  # pipes stay inside cells
    assert "m\\|&lt;b&gt;&lt;script&gt;" in row and "a\\|b \\[x\\](javascript:alert(2)) &lt;img src=x&gt;" in row


def test_runs_of_other_code_are_marked_stale_and_current_ones_are_not(rendered):
    table = pd.read_csv(rendered["table2.csv"], keep_default_na=False)
    stale = table.loc[table["stale"] == "True", "run_ids"].tolist()
    assert stale == ["qkc10e5"]  # the one fixture run that recorded another code fingerprint
    assert set(table.loc[table["top1_n"] > 0, "stale"]) == {"True", "False"}
    assert "¶ stale: computed by other code" in rendered["table2.md"].read_text()
