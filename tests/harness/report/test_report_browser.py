"""The leaderboard in real headless Chromium (Debian's, driven by Playwright without downloading a browser):
no console errors, sorting and filtering by clicking, provenance rows, plots, escaped run names."""

from pathlib import Path

import pytest

from harness.report.leaderboard import render_leaderboard
from test_report_leaderboard import XSS, hostile_runs

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def board_url(tmp_path_factory):
    return render_leaderboard(hostile_runs(), tmp_path_factory.mktemp("board") / "index.html",
                              first_suite="paper").as_uri()


@pytest.fixture
def page(browser, board_url):
    """The loaded page; after the test, no console error, page error, dialog or network request happened."""
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.set_default_timeout(5000)
    events = []
    page.on("console", lambda m: m.type in ("error", "warning") and events.append(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: events.append(f"page error: {e}"))
    page.on("dialog", lambda d: (events.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: r.url != board_url and events.append(f"request: {r.url}"))
    page.goto(board_url)
    page.wait_for_selector("body[data-ready]", state="attached")  # the tables' rows are unpacked
    yield page
    page.close()
    assert events == []


def _models(page, section):
    return [t.strip() for t in page.locator(f"#{section} table.board > tbody:visible > tr.main > td:nth-child(2)")
            .all_inner_texts()]


def _header(page, section, key):
    return page.locator(f"#{section} thead th[data-key={key}]")


def test_sorting_by_clicking_headers(page):
    header = _header(page, "d0", "top1")
    header.locator("button").click()
    assert _models(page, "d0") == ["sdt_8_384.in1k", "spikingresformer_ti.in1k", "qkformer_10_384.in1k",
                                   "msvit_10_512.in1k", "msvit_10_768.in1k"]
    assert header.get_attribute("aria-sort") == "ascending"
    header.locator("button").click()
    assert _models(page, "d0") == ["msvit_10_768.in1k", "msvit_10_512.in1k", "qkformer_10_384.in1k",
                                   "spikingresformer_ti.in1k", "sdt_8_384.in1k"]
    _header(page, "d0", "energy").locator("button").click()
    assert _models(page, "d0")[0] == "sdt_8_384.in1k"
    _header(page, "d0", "model").locator("button").click()
    assert _models(page, "d0") == sorted(_models(page, "d0"))


def test_filtering_by_family_T_and_parameters(page):
    form = page.locator("#d0 form.filters")
    form.locator("select[name=family]").select_option("msvit")
    assert _models(page, "d0") == ["msvit_10_512.in1k", "msvit_10_768.in1k"]
    assert form.locator(".count").inner_text() == "2 of 5 rows"
    assert page.locator('#d0 svg .pt.measured[visibility="hidden"]').count() == 3 * 2  # three hidden rows, two plots
    form.locator("input[name=pmax]").fill("40")
    assert _models(page, "d0") == ["msvit_10_512.in1k"]
    form.locator("select[name=family]").select_option("")
    form.locator("input[name=pmin]").fill("16.6")
    assert _models(page, "d0") == ["msvit_10_512.in1k", "sdt_8_384.in1k"]
    page.locator("#d2 form.filters select[name=T]").select_option("8")
    assert _models(page, "d2") == ["msvit_4_384.cifar100"]
    assert page.locator("#d2 .count").inner_text() == "1 of 8 rows"  # the controlled runs are CIFAR100 rows too


def test_a_row_opens_its_provenance(page):
    row = page.locator("#d2 tbody[data-t='4']").filter(has=page.locator("td[data-sort='msvit_4_384.cifar100']"))
    provenance = row.locator("tr.prov")
    assert provenance.is_hidden()
    row.locator("button.toggle").click()
    assert provenance.is_visible()
    text = provenance.inner_text()
    for expected in ("c100s0", "c100s3", "diverged: loss is nan at epoch 12",
                     "python -m harness run suites/paper.yaml --only c100s1", "recipe.optim.lr", "0123abcd"):
        assert expected in text
    row.locator("button.toggle").click()
    assert provenance.is_hidden()


def test_plots_render_points(page):
    # CIFAR10 (d1) has no energy measured or claimed: only its parameters plot
    for section, count in (("d0", 2), ("d1", 1), ("d2", 2), ("d3", 2), ("d4", 2)):
        plots = page.locator(f"#{section} svg.scatter")
        assert plots.count() == count
        box = plots.first.bounding_box()
        assert box["width"] > 300 and box["height"] > 200
        assert plots.first.locator("circle.pt.measured").count() >= 1
    # every ImageNet energy claim: 20 of the MSViT paper's Table 1, SpikingResformer-Ti/M's and Spikingformer 8-*'s
    assert page.locator("#d0 svg.scatter").first.locator("path.pt.claimed").count() == 20 + 2 + 3
    assert page.locator("#d0 svg.scatter polyline.front").count() == 2


def test_markup_in_run_strings_shows_as_text(page, tmp_path):
    cell = page.locator("#d2 tbody > tr.main > td:nth-child(2)", has_text="alert(1)")
    assert cell.inner_text().startswith(XSS)
    assert page.locator("img").count() == 0 and page.locator('script:not([type="application/gzip"])').count() == 1
    page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)
    assert (tmp_path / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _overflow(page) -> dict:
    """How far the page and each dataset table reach past their box (0 when nothing scrolls sideways)."""
    return page.evaluate("""() => ({
        page: document.documentElement.scrollWidth - window.innerWidth,
        tables: Array.from(document.querySelectorAll('.table-wrap')).map(w => w.scrollWidth - w.clientWidth)
            .filter(extra => extra > 0).length})""")


@pytest.mark.parametrize("width", [1280, 1920])
def test_compact_columns_fit_the_screen_without_horizontal_scrolling(browser, board_url, width, tmp_path):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(board_url)
    page.wait_for_selector("body[data-ready]", state="attached")
    headers = page.locator("#d0 thead th[data-key]:visible").evaluate_all("cells => cells.map(c => c.dataset.key)")
    assert headers == ["model", "T", "params", "top1", "claimed", "verdict", "energy"]
    assert _overflow(page) == {"page": 0, "tables": 0}
    page.screenshot(path=str(tmp_path / f"leaderboard-{width}.png"), full_page=False)
    assert (tmp_path / f"leaderboard-{width}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.close()


def test_the_column_chooser_shows_and_hides_columns_in_every_table(page):
    assert page.locator("th[data-key=family]:visible").count() == 0
    page.locator("details.chooser > summary").click()
    page.locator("form.columns-form input[name=family]").check()
    sections = page.locator("table.board:not(#released-table)").count()  # the released table has no chooser
    assert page.locator("table.board th[data-key=family]:visible").count() == sections
    assert page.locator("#d0 tbody > tr.main > td.col-family:visible").first.inner_text() in ("msvit", "qkformer",
                                                                                              "sdt", "spikingresformer")
    page.locator("form.columns-form input[name=energy]").uncheck()
    assert page.locator("table.board th[data-key=energy]:visible").count() == 0
