"""What ``run`` prints at its end (``run_summary``), the full report's folding of tables without runs, and
failed rows that say why (Markdown and page)."""

import json

import pandas as pd
import pytest

from harness.report.claims import load_claims
from harness.report.formats import energy_unit
from harness.report.frame import load_runs
from harness.report.leaderboard import build_context
from harness.report.summary import param_text, run_summary
from harness.report.tables import REPRODUCIBILITY, render_tables
from harness.suite import RunSpec
from report_runs import fixture_runs, run

SMOKE_MODELS = ("msvit_4_384.cifar10", "qkformer_4_384.cifar10", "spikformer_4_384.cifar10", "sdt_2_512.cifar10",
                "sdtv2_10_384.in1k", "spikingresformer_tistar.cifar10", "swformer_4_384.cifar10")
CIFAR_MISSING = "dataset cifar10 missing under /data/nowhere: expected cifar-10-batches-py/"


def smoke_runs() -> pd.DataFrame:
    """Fourteen one-seed runs as the main job logs them: shrunk models (overrides), 3 epochs, energies of µJ."""
    rows = [run(f"smk{i}{d}", model, dataset, 4, 0, 40.0 + i, suite="smoke", recipe=dataset, params=150_000 + i,
                energy=0.002 + i * 1e-4, epochs=3, device="cpu", overrides={"depth": 1})
            for i, model in enumerate(SMOKE_MODELS) for d, dataset in (("s", "digits"), ("e", "digits_dvs"))]
    return pd.DataFrame(rows)


def _spec(model: str, dataset: str, suite: str = "smoke", seed: int = 0, **fields) -> RunSpec:
    return RunSpec(suite=suite, model=model, dataset=dataset, T=4, seed=seed, recipe=dataset, recipe_hash="r",
                   **fields)


def test_energy_units_follow_the_scale_of_a_column():
    assert energy_unit([0.00393, 0.0058, None]) == ("µJ", 1e3)
    assert energy_unit([0.9, 1.1]) == ("mJ", 1.0)
    assert energy_unit([4e-6]) == ("nJ", 1e6)
    assert energy_unit([None, float("nan")]) == ("mJ", 1.0)
    assert param_text(149_530) == "149.5k" and param_text(7_593_412) == "7.59M" and param_text(None) == "—"


def test_the_summary_of_the_main_job_fits_a_screen_and_names_its_runs(tmp_path):
    runs = smoke_runs()
    specs = [_spec(m, d) for m, d in zip(runs["model"], runs["dataset"])]
    runs["run_id"] = [s.run_id for s in specs]
    text = run_summary(runs, "smoke", specs, tmp_path, tmp_path / "report.md", tmp_path / "index.html")
    lines = text.splitlines()
    assert len(lines) < 40
    header = lines[1]
    assert header.split()[:4] == ["model", "data", "T", "params"] and "energy (µJ)" in header
    rows = lines[2:2 + 14]
    named = [tuple(r.split()[:2]) for r in rows]  # one line per configuration, by dataset and model
    assert named == sorted(set(named), key=lambda pair: (pair[1], pair[0])) and len(named) == 14
    assert all("no claim: model changed by overrides" in r for r in rows)
    msvit = next(r for r in rows if r.startswith("msvit_4_384.cifar10") and " digits " in r)
    assert "150.0k" in msvit and "40.00" in msvit and "39.70" in msvit and " 2.00 " in msvit
    assert sum("epochs=3" in line for line in lines) == 1  # the reduced budget said once
    assert lines[-2:] == [f"full report: {tmp_path / 'report.md'} (every paper table: `python -m harness report "
                          f"<suite> --all`)", f"page: {tmp_path / 'index.html'}"]


def test_the_summary_gives_the_verdict_or_why_there_is_none(tmp_path):
    frame = fixture_runs()
    failed = [run(f"c10fail{s}", "msvit_4_384.cifar10", "cifar10", 4, s, None, state="failed", reason=CIFAR_MISSING
                  + "\nTraceback (most recent call last): ...") for s in (0, 1)]
    frame = pd.concat([frame, pd.DataFrame(failed)], ignore_index=True)
    paper = frame[frame["suite"] == "paper"]
    specs = [_spec(m, d, suite="paper", seed=int(seed), variant=v or None, recipe_overrides={"id": r})
             for m, d, seed, v, r in zip(paper["model"], paper["dataset"], paper["seed"], paper["variant"],
                                         paper["run_id"])]
    ids = dict(zip(paper["run_id"], [s.run_id for s in specs]))
    frame["run_id"] = frame["run_id"].map(lambda r: ids.get(r, r))
    lost = _spec("qkformer_4_384.cifar10", "cifar10", suite="paper", epochs=1)  # killed at an abort: never logged
    directory = tmp_path / "runs" / lost.run_id
    directory.mkdir(parents=True)
    (directory / "status.json").write_text(json.dumps({"state": "interrupted", "reason": "suite aborted: disk full"}))
    text = run_summary(frame, "paper", [*specs, lost], tmp_path, tmp_path / "r.md", tmp_path / "p.html")
    lines = {line.split("  ")[0] + "|" + line.split()[1]: line for line in text.splitlines()[2:]
             if line.split() and "_" in line.split()[0]}
    assert "2 failed: dataset cifar10 missing under /data/nowhere" in lines["msvit_4_384.cifar10|cifar10"]
    assert "7.56M" in lines["msvit_4_384.cifar10|cifar10"]  # no run finished: the zoo's count
    assert "Traceback" not in text
    assert lines["msvit_10_768.in1k|imagenet"].endswith("reproduced")
    assert "interrupted: suite aborted: disk full" in lines["qkformer_4_384.cifar10|cifar10"]


def test_the_full_report_folds_tables_without_runs_and_says_each_note_once(tmp_path):
    paths = render_tables(smoke_runs(), "smoke", tmp_path)
    report = paths["report.md"].read_text()
    tables = len(load_claims().tables)
    rows = sum(len(load_claims().of_table(t)) for t in load_claims().tables)
    assert f"Tables 1-{tables}: {rows} rows not run; see `python -m harness report <suite file> --all`." in report
    assert "| Energy (µJ) paper |" in report  # the report's own table in the unit of its scale
    assert "## Table 1" not in report and "## Runs outside the paper's tables" in report
    assert report.count("reduced budget") == 1 and report.count("the best epoch's top-1") == 1
    assert REPRODUCIBILITY in report.replace("\\", "")
    assert "shared/" not in report and "zoo-spec" not in report
    every = render_tables(smoke_runs(), "smoke", tmp_path / "all", all_tables=True)["report.md"].read_text()
    assert "## Table 1: ImageNet-1K" in every and "rows not run" not in every
    assert every.count("Margins: top-1 ±0.5 points") == 1  # the same footnote under four tables: once


def test_failed_rows_show_their_reason_and_parameters_in_markdown_and_page(tmp_path):
    failed = pd.DataFrame([run(f"c10fail{s}", "msvit_4_384.cifar10", "cifar10", 4, s, None, state="failed",
                               reason=CIFAR_MISSING, suite="table2") for s in (0, 1, 2)])
    frame = pd.concat([fixture_runs(), failed], ignore_index=True)
    table2 = render_tables(frame, "table2", tmp_path)["table2.md"].read_text()
    msvit = next(line for line in table2.splitlines() if line.startswith("| MSViT | 7.59 |"))
    assert "| 7.56 |" in msvit and f"3 failed: {CIFAR_MISSING}" in msvit and "not run yet" not in msvit
    never = next(line for line in table2.splitlines() if line.startswith("| QKFormer | 6.74 |"))
    assert never.startswith("| QKFormer | 6.74 | 6.71 | 4 |") and "not run yet" in never  # never run: zoo count
    context = build_context(load_runs(frame), load_claims(), first_suite="table2")
    section = context["sections"][0]
    assert section["dataset"] == "cifar10"  # the suite just run comes first
    row = next(r for r in section["rows"] if r["cells"][0].text == "msvit_4_384.cifar10")
    texts = {key: cell.text for (key, *_), cell in zip(section["columns"], row["cells"])}
    assert texts["verdict"] == f"3 failed: {CIFAR_MISSING}" and texts["params"] == "7.56"


def test_other_suites_runs_without_a_result_are_folded_with_their_reason():
    failed = pd.DataFrame([run("c10fail0", "msvit_4_384.cifar10", "cifar10", 4, 0, None, state="failed",
                               reason=CIFAR_MISSING, suite="table2", day=1)])
    frame = pd.concat([smoke_runs(), failed], ignore_index=True)
    context = build_context(load_runs(frame), load_claims(), first_suite="smoke")
    assert [s["dataset"] for s in context["sections"]] == ["digits", "digits_dvs"]
    assert context["folded"] == [["CIFAR10", "msvit_4_384.cifar10", "4", "7.56", "table2",
                                  f"1 failed: {CIFAR_MISSING}"]]
    latest = build_context(load_runs(frame), load_claims())  # default: the latest run's suite (smoke: day 1 too)
    assert latest["first_suite"] in ("smoke", "table2")


@pytest.mark.parametrize("unit_energy, unit", [(0.0058, "µJ"), (45.0, "mJ")])
def test_page_energies_take_the_unit_of_their_section(unit_energy, unit):
    frame = pd.DataFrame([run("e0", "qkformer_4_384.cifar10", "digits", 4, 0, 90.0, energy=unit_energy,
                              params=150_000, suite="smoke")])
    section = build_context(load_runs(frame), load_claims())["sections"][0]
    headers = {key: header for key, header, *_ in section["columns"]}
    assert headers["energy"] == f"Energy paper ({unit})"
    energy_plot = section["plots"][0]
    assert energy_plot.x_label == f"energy per image ({unit})" and energy_plot.log_x
    assert all(plot.log_x for plot in section["plots"])  # one scale per quantity, whatever the spread


def test_the_papers_claims_are_in_the_table_too():
    context = build_context(load_runs(fixture_runs()), load_claims(), first_suite="paper")
    imagenet = context["sections"][0]
    claimed = [c for c in load_claims().claims if c.dataset == "imagenet" and c.top1 is not None]
    assert len(imagenet["claims"]) == len(claimed) > 20  # every diamond of the plots, as a row
    assert ["MSViT", "4", "69.80", "45.88", "85.06"] in [[r[0].split(" ")[0], *r[1:]] for r in imagenet["claims"]
                                                         if r[2] == "69.80"]
    row = next(r for r in imagenet["rows"] if r["cells"][0].text == "msvit_10_768.in1k")
    texts = {key: cell.text for (key, *_), cell in zip(imagenet["columns"], row["cells"])}
    assert (texts["claimed"], texts["claimed_params"], texts["claimed_energy"]) == ("85.06", "69.80", "45.88")
    assert context["reproducibility"] == REPRODUCIBILITY
