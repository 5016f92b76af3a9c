"""Runs from several sources in one report: seeds pooled per configuration, source and code fingerprint; the
Source column, filter and verification badge of the leaderboard and the tables; ``--source``."""

import pandas as pd
import pytest

from harness.cli import main
from harness.report.aggregate import distinguishing, group_configs, unique_runs
from harness.report.claims import load_claims
from harness.report.frame import UnknownSource, load_runs
from harness.report.leaderboard import build_context, page_rows, render_leaderboard
from harness.report.tables import build_tables, report_markdown
from report_runs import fixture_runs, run

C10 = dict(model="qkformer_4_384.cifar10", dataset="cifar10", T=4, params=6_700_000, energy=0.5)
DATE = "2026-12-01T10:00:00Z"


def imported(row: dict, site: str = "labA", verified: str | None = None, disagreements: int | None = None,
             images: int = 64) -> dict:
    """``row`` as logged from an imported run of ``site``, with its verification tags when ``verified``."""
    tags = {"source": site, "imported": "true", "verified": verified or "not verified"}
    if verified:
        tags.update(verified_date=DATE, verified_images=str(images), disagreements=str(disagreements or 0))
    return {**row, **tags, "mlflow_run_id": f"{row['mlflow_run_id']}-{site}"}


def frame(*rows: dict) -> pd.DataFrame:
    return load_runs(pd.DataFrame(list(rows)))


def configs_of(*rows: dict):
    return group_configs(frame(*rows))


def test_seeds_of_different_code_are_never_averaged():
    runs = [run("a0", seed=0, top1=90.0, code="aaaa" * 16, **C10),
            run("a1", seed=1, top1=91.0, code="aaaa" * 16, **C10),
            run("b2", seed=2, top1=50.0, code="bbbb" * 16, **C10)]
    configs = configs_of(*runs)
    assert [(c.code_fingerprint[:4], c.top1_stat().n, c.top1_stat().mean) for c in configs] == [
        ("aaaa", 2, 90.5), ("bbbb", 1, 50.0)]
    assert distinguishing(configs) == {0: "code=aaaaaaaaaaaa", 1: "code=bbbbbbbbbbbb"}
    context = build_context(frame(*runs), load_claims())
    names = [row["cells"][0].text for s in context["sections"] for row in s["rows"]]
    assert names == ["qkformer_4_384.cifar10 [code=aaaaaaaaaaaa]", "qkformer_4_384.cifar10 [code=bbbbbbbbbbbb]"]


def test_seeds_of_one_configuration_code_and_source_are_pooled():
    runs = [imported(run(f"s{seed}", seed=seed, top1=90.0 + seed, **C10)) for seed in range(3)]
    (config,) = configs_of(*runs)
    assert (config.source, config.top1_stat().n, config.top1_stat().mean) == ("labA (imported)", 3, 91.0)


def test_a_run_that_failed_before_its_code_was_fingerprinted_stays_with_its_configuration():
    failed = {**run("f1", seed=1, top1=None, state="failed", reason="out of memory", **C10), "code_fingerprint": None}
    (config,) = configs_of(run("a0", seed=0, top1=90.0, **C10), failed)
    assert config.unfinished == 1 and config.outcome == "1 failed: out of memory"


def test_a_local_and_an_imported_run_of_one_run_id_are_two_rows():
    local = run("same", seed=0, top1=90.0, **C10)
    runs = frame(local, imported(run("same", seed=0, top1=89.0, **C10), verified="verified"))
    assert sorted(unique_runs(runs)["source_label"]) == ["labA (imported)", "local"]
    configs = group_configs(runs)
    assert [(c.source, c.top1_stat().n, c.top1_stat().mean) for c in configs] == [
        ("local", 1, 90.0), ("labA (imported)", 1, 89.0)]
    assert build_context(runs, load_claims())["run_count"] == 2


def test_a_bundle_of_the_default_site_name_is_not_read_as_a_local_run():
    runs = frame(run("x", seed=0, top1=90.0, **C10), imported(run("x", seed=0, top1=90.0, **C10), site="local"))
    assert [c.source for c in group_configs(runs)] == ["local", "local (imported)"]


@pytest.mark.parametrize("states, text, state", [
    ([("verified", 0), ("verified", 0)], "verified", "verified"),
    ([("verified", 0), ("disagrees", 3), ("disagrees", 2)], "disagreements 5", "disagrees"),
    ([("verified", 0), (None, None)], "not verified", "not verified"),
    ([(None, None)], "not verified", "not verified"),
])
def test_the_badge_of_a_row(states, text, state):
    runs = [imported(run(f"s{seed}", seed=seed, top1=90.0, **C10), verified=verdict, disagreements=count)
            for seed, (verdict, count) in enumerate(states)]
    (config,) = configs_of(*runs)
    badge = config.verification
    assert (badge.text, badge.state) == (text, state)
    first = f"seed 0: {states[0][0] or 'not verified'}" + (f" on {DATE}" if states[0][0] else "")
    assert badge.title.startswith(first) and badge.title.count("seed ") == len(states)


def _cells(context, section=0):
    s = context["sections"][section]
    return [{key: cell for (key, *_), cell in zip(s["columns"], row["cells"], strict=True)} for row in s["rows"]]


def test_the_leaderboard_shows_source_and_badge_once_runs_come_from_several_sources():
    runs = frame(run("l0", seed=0, top1=90.0, **C10),
                 imported(run("r0", seed=0, top1=89.0, **C10), verified="disagrees", disagreements=4))
    context = build_context(runs, load_claims())
    assert context["merged"] and context["sources"] == ["local", "labA (imported)"]
    section = context["sections"][0]
    shown = {key for key, _, _, compact in section["columns"] if compact}
    assert {"source", "verified"} <= shown and section["sources"] == ["labA (imported)", "local"]
    cells = _cells(context)
    assert [(c["source"].text, c["verified"].text, c["verified"].badge) for c in cells] == [
        ("local", "not verified", "not-verified"), ("labA (imported)", "disagreements 4", "disagrees")]
    assert cells[1]["verified"].title == f"seed 0: disagrees on {DATE}"
    assert [row["source"] for row in section["rows"]] == ["local", "labA (imported)"]


def test_a_single_source_page_keeps_its_compact_columns():
    context = build_context(load_runs(fixture_runs()), load_claims())
    assert not context["merged"] and context["sources"] == ["local"]
    shown = {key for key, _, _, compact in context["sections"][0]["columns"] if compact}
    assert not {"source", "verified"} & shown


def test_the_page_carries_the_source_filter_badge_and_row_sources(tmp_path):
    runs = pd.DataFrame([run("l0", seed=0, top1=90.0, **C10),
                         imported(run("r0", seed=0, top1=89.0, **C10), verified="verified")])
    page = render_leaderboard(runs, tmp_path / "index.html").read_text()
    assert '<select name="source">' in page and '<option value="labA (imported)">' in page
    rows = page_rows(page)  # the rows the page's script draws: [..., cells, provenance, source]
    assert [row[6] for row in rows] == ["local", "labA (imported)"]
    badges = [cell for cell in rows[1][4] if len(cell) > 2]
    assert badges == [["verified", "verified", "verified", f"seed 0: verified on {DATE}"]]
    assert rows[1][5][5] == "labA (imported)"  # the provenance names the source too


def test_sources_select_runs_by_label_or_site():
    rows = pd.DataFrame([run("l0", seed=0, top1=90.0, **C10), imported(run("r0", seed=0, top1=89.0, **C10)),
                         imported(run("q0", seed=0, top1=88.0, **C10), site="labB")])
    assert list(load_runs(rows, sources=["local"])["run_id"]) == ["l0"]
    assert list(load_runs(rows, sources=["labA"])["run_id"]) == ["r0"]
    assert sorted(load_runs(rows, sources=["labA (imported)", "labB"])["run_id"]) == ["q0", "r0"]
    with pytest.raises(UnknownSource, match=r"^--source labC: no logged run comes from it; expected one of: "
                                            r"labA \(imported\), labB \(imported\), local$"):
        load_runs(rows, sources=["labC"])


def test_report_tables_show_source_and_verified_once_merged():
    runs = frame(run("l0", seed=0, top1=90.0, **C10),
                 imported(run("r0", seed=0, top1=89.0, **C10), verified="verified"))
    tables = build_tables(runs, load_claims())
    measured = pd.concat([t.data for t in tables]).dropna(subset=["run_source"])
    assert list(zip(measured["run_source"], measured["verified"])) == [
        ("local", "not verified"), ("labA (imported)", "verified")]
    assert all([c.key for c in t.display.columns][-2:] == ["run_source", "verified"] for t in tables)
    text = report_markdown("paper", runs, tables)
    assert "2 runs logged, 2 finished. Sources: labA (imported), local." in text
    assert "Seeds are pooled only across runs of one configuration, one source and one code fingerprint" in text
    local_only = build_tables(load_runs(fixture_runs()), load_claims())
    assert all("run_source" not in [c.key for c in t.display.columns] for t in local_only)


def test_an_unknown_source_on_the_command_line_is_one_line(tmp_path, capsys):
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--source", "nowhere"]) == 2
    err = capsys.readouterr().err  # besides, maybe, MLflow's log lines on creating the store
    assert "Traceback" not in err and [line for line in err.splitlines() if line.startswith("error")] == [
        "error: --source nowhere: no logged run comes from it; expected one of: none"]


def test_the_summary_after_a_run_shows_the_runs_made_here_not_their_imported_copies(tmp_path):
    from harness.report.summary import run_summary
    from harness.suite import RunSpec

    spec = RunSpec(suite="paper", model=C10["model"], dataset="cifar10", T=4, seed=0, recipe="qkformer_cifar10",
                   recipe_hash="r")
    runs = pd.DataFrame([run(spec.run_id, seed=0, top1=90.0, **C10),
                         imported(run(spec.run_id, seed=0, top1=10.0, **C10))])
    text = run_summary(runs, "paper", [spec], tmp_path, tmp_path / "r.md", tmp_path / "p.html")
    rows = [line for line in text.splitlines() if line.startswith(C10["model"])]
    assert len(rows) == 1 and "90.0" in rows[0] and "10.0" not in rows[0], text
