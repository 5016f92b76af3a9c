"""Done when (issue 25, item 4): a tiny suite trained, exported, imported into an empty results directory, verified,
collected beside this site's own run of the same suite; the merged leaderboard, in real headless Chromium, shows
both sources and the verification badge, and its source filter hides the other source's rows."""

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.report.leaderboard import page_rows
from harness.tracking import TAG, default_uri

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
IMPORTED = "labA (imported)"
README = Path(__file__).resolve().parents[3] / "README.md"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")]


def _logged(results: Path, run_id: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(default_uri(results))
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=f"tags.`{TAG}run_id` = '{run_id}'")


@pytest.fixture
def merged(trained, bundle, tmp_path, capsys):
    """Site B's results: labA's bundle imported and verified, and B's own run of the same suite, collected."""
    results = tmp_path / "siteB"
    assert main(["import", str(bundle), "--results-dir", str(results)]) == 0
    assert main(["verify", str(bundle), "--results-dir", str(results), "--images", "40"]) == 0
    shutil.copytree(trained["run"], results / "runs" / trained["run"].name)  # B ran the same suite: same run id
    capsys.readouterr()
    assert main(["collect", "--results-dir", str(results)]) == 0
    assert "2 logged" in capsys.readouterr().out
    return results


def _rows(page) -> list[tuple[str, str]]:
    """The visible rows of the digits table: (source, badge)."""
    rows = page.locator("table.board > tbody:visible > tr.main")
    return [(row.locator("td.col-source").inner_text(), row.locator("td.col-verified").inner_text())
            for row in rows.all()]


def test_the_merged_leaderboard_in_chromium(merged, trained, tmp_path, capsys):
    from playwright.sync_api import sync_playwright

    run_id = trained["run"].name
    assert main(["leaderboard", "--results-dir", str(merged)]) == 0
    url = (merged / "leaderboard" / "index.html").as_uri()
    date = json.loads((merged / "imported" / "labA" / run_id / "verification.json").read_text())["date"]
    events = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.set_default_timeout(5000)
        page.on("console", lambda m: m.type in ("error", "warning") and events.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: events.append(f"page error: {e}"))
        page.goto(url)
        headers = page.locator("thead th[data-key]:visible").evaluate_all("cells => cells.map(c => c.dataset.key)")
        assert headers[:2] == ["model", "source"] and "verified" in headers
        assert sorted(_rows(page)) == sorted([("local", "not verified"), (IMPORTED, "verified")])
        badge = page.locator("td.col-verified .badge-verified")
        assert badge.get_attribute("title") == f"seed 0: verified on {date}"
        form = page.locator("form.filters")
        form.locator("select[name=source]").select_option(IMPORTED)
        assert _rows(page) == [(IMPORTED, "verified")] and form.locator(".count").inner_text() == "1 of 2 rows"
        form.locator("select[name=source]").select_option("local")
        assert _rows(page) == [("local", "not verified")]
        form.locator("select[name=source]").select_option("")
        assert len(_rows(page)) == 2
        browser.close()
    assert events == []


def test_reverifying_then_collecting_replaces_the_imported_run_never_duplicates_it(merged, trained, capsys):
    run_id = trained["run"].name
    before = {r.data.tags[TAG + "source"]: r.info.run_id for r in _logged(merged, run_id)}
    assert main(["verify", str(merged / "imported" / "labA" / run_id), "--results-dir", str(merged),
                 "--images", "10"]) == 0  # one batch of 32 now: another verification.json
    capsys.readouterr()
    assert main(["collect", "--results-dir", str(merged)]) == 0
    assert "1 logged, 1 unchanged" in capsys.readouterr().out
    runs = _logged(merged, run_id)
    by_source = {r.data.tags[TAG + "source"]: r for r in runs}
    assert len(runs) == 2 and by_source["labA"].data.tags[TAG + "verified_images"] == "32"
    assert by_source["labA"].info.run_id != before["labA"] and by_source["local"].info.run_id == before["local"]


def _readme_commands() -> list[list[str]]:
    """The commands of README's "One leaderboard from many sources", as argument lists."""
    section = README.read_text().split("### One leaderboard from many sources", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]
    assert all(c[:3] == ["python", "-m", "harness"] for c in commands), commands
    return [c[3:] for c in commands]


def test_the_readme_commands_run_as_written(merged, trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPIKEBENCH_RESULTS", str(merged))
    monkeypatch.chdir(tmp_path)
    for argv in _readme_commands():  # README's site and suite are this test's
        argv = [{"mylab": "labA", "suites/smoke.yaml": str(trained["suite"])}.get(a, a) for a in argv]
        assert main(argv) == 0, argv
    one_site = (tmp_path / "mylab.html").read_text()
    sources = {row[6] for row in page_rows(one_site)}  # the rows the page draws
    assert sources == {IMPORTED}
    report = capsys.readouterr().out
    assert "1 runs logged, 1 finished." in report and "(imported)" not in report
