"""The leaderboard's table pages in real headless Chromium with 200 configurations: paging reaches every row once,
and the filters, sorting and column chooser act on all rows, not only the page shown."""

import pandas as pd
import pytest

from harness.report.leaderboard import PAGE_SIZE, render_leaderboard
from report_runs import run
from test_report_browser import CHROMIUM, FLAGS

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")]
MODELS = ("msvit_4_384.cifar10", "qkformer_4_384.cifar10", "spikformer_4_384.cifar10", "sdt_2_512.cifar10")
CONFIGS = 200


def many_runs() -> pd.DataFrame:
    """200 CIFAR-10 configurations (four models, each with 50 widths), one seed each; top-1 rises with the index."""
    rows = [run(f"r{i}", MODELS[i % 4], "cifar10", 4 if i % 5 else 8, 0, 50.0 + i * 0.2, params=1e6 * (1 + i),
                energy=0.1 + i / 1000, overrides={"dim": 16 * (i + 1)}) for i in range(CONFIGS)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    url = render_leaderboard(many_runs(), tmp_path_factory.mktemp("paged") / "index.html").as_uri()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.set_default_timeout(10000)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_selector("body[data-ready]", state="attached")
        yield page
        assert errors == []
        browser.close()


def _rows(page) -> list[str]:
    return page.locator("#d0 table.board > tbody > tr.main > td.col-model").all_inner_texts()


def _all_pages(page) -> list[str]:
    """The model cells of every page, from the current page to the last."""
    seen = _rows(page)
    nxt = page.locator("#d0 nav.pager button.next")
    while nxt.is_enabled():
        nxt.click()
        seen += _rows(page)
    return seen


def _first_page(page) -> None:
    prev = page.locator("#d0 nav.pager button.prev")
    while prev.is_enabled():
        prev.click()


def test_paging_shows_every_row_once(page):
    assert len(_rows(page)) == PAGE_SIZE
    assert page.locator("#d0 nav.pager .page").inner_text() == f"page 1 of {CONFIGS // PAGE_SIZE}"
    seen = _all_pages(page)
    assert len(seen) == CONFIGS and len(set(seen)) == CONFIGS  # each configuration's name is distinct
    page.locator("#d0 nav.pager select[name=size]").select_option("250")
    assert len(_rows(page)) == CONFIGS
    page.locator("#d0 nav.pager select[name=size]").select_option(str(PAGE_SIZE))


def test_a_filter_applies_to_every_row(page):
    form = page.locator("#d0 form.filters")
    form.locator("select[name=family]").select_option("sdt")
    assert form.locator(".count").inner_text() == f"{CONFIGS // 4} of {CONFIGS} rows"
    rows = _all_pages(page)
    assert len(rows) == CONFIGS // 4 and all(name.startswith("sdt_2_512") for name in rows)
    hidden = page.locator('#d0 svg .pt.measured[visibility="hidden"]').count()
    assert hidden == 2 * (CONFIGS - CONFIGS // 4)  # the other families' points, on both plots
    form.locator("select[name=T]").select_option("8")
    assert form.locator(".count").inner_text() == f"{CONFIGS // 20} of {CONFIGS} rows"
    form.locator("select[name=family]").select_option("")
    form.locator("select[name=T]").select_option("")
    assert form.locator(".count").inner_text() == f"{CONFIGS} of {CONFIGS} rows"


def test_sorting_orders_every_row_before_paging(page):
    _first_page(page)
    button = page.locator("#d0 thead th[data-key=top1] button")
    button.click()  # ascending: the lowest top-1 of all 200 first
    keys = page.locator("#d0 table.board > tbody > tr.main > td.col-top1").evaluate_all(
        "cells => cells.map(c => parseFloat(c.dataset.sort))")
    assert keys == sorted(keys) and keys[0] == pytest.approx(50.0)
    button.click()  # descending: the highest of all 200 on the first page, the lowest on the last
    first = page.locator("#d0 table.board > tbody > tr.main > td.col-top1").first.get_attribute("data-sort")
    assert float(first) == pytest.approx(50.0 + (CONFIGS - 1) * 0.2)
    ordered = [float(v) for v in _top1_of_all_pages(page)]
    assert ordered == sorted(ordered, reverse=True) and len(ordered) == CONFIGS


def _top1_of_all_pages(page) -> list[str]:
    _first_page(page)
    cells = "#d0 table.board > tbody > tr.main > td.col-top1"
    seen = page.locator(cells).evaluate_all("cells => cells.map(c => c.dataset.sort)")
    nxt = page.locator("#d0 nav.pager button.next")
    while nxt.is_enabled():
        nxt.click()
        seen += page.locator(cells).evaluate_all("cells => cells.map(c => c.dataset.sort)")
    return seen


def test_the_column_chooser_holds_on_later_pages_and_provenance_opens_there(page):
    _first_page(page)
    page.locator("details.chooser > summary").click()
    page.locator("form.columns-form input[name=family]").check()
    page.locator("#d0 nav.pager button.next").click()
    assert page.locator("#d0 tbody > tr.main > td.col-family:visible").count() == PAGE_SIZE
    page.locator("form.columns-form input[name=family]").uncheck()
    page.locator("#d0 nav.pager button.next").click()
    assert page.locator("#d0 tbody > tr.main > td.col-family:visible").count() == 0
    group = page.locator("#d0 table.board > tbody").first
    group.locator("button.toggle").click()
    provenance = group.locator("tr.prov")
    assert provenance.is_visible()
    run_id = provenance.locator("table.runs > tbody > tr > td:nth-child(2)").first.inner_text()
    assert f"--only {run_id}" in provenance.inner_text() and "recipe.optim.lr" in provenance.inner_text()
