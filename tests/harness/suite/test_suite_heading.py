"""A report's suite heading (name, margins) kept across processes while the suite files and the code are unchanged."""

import time

import pytest

from harness import suite
from harness.cli import main
from harness.suite import FILE_TIME_TICK_NS, Margins, cached_heading, load_suite

BODY = "name: {name}\nmargins: {{top1: 0.75, energy: 0.2}}\nruns:\n  - {{model: sdt_2_512.cifar10, dataset: digits}}\n"


@pytest.fixture
def suite_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEBENCH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "mine.yaml"
    path.write_text(BODY.format(name="mine"))
    time.sleep(2 * FILE_TIME_TICK_NS / 1e9)  # a file written as it is read is not kept
    return path


def _parses(monkeypatch) -> list:
    parsed = []
    original = suite.load_suite
    monkeypatch.setattr(suite, "load_suite", lambda *args: parsed.append(args) or original(*args))
    return parsed


def test_the_heading_equals_the_suite_files_and_is_not_parsed_again(suite_file, monkeypatch):
    heading = cached_heading(suite_file)
    loaded = load_suite(suite_file)
    assert heading == (loaded.name, loaded.margins) and heading.margins == Margins(top1=0.75, energy=0.2)
    parsed = _parses(monkeypatch)
    assert cached_heading(suite_file) == heading and parsed == []


def test_an_edited_suite_is_read_again(suite_file, monkeypatch):
    cached_heading(suite_file)
    suite_file.write_text(BODY.format(name="renamed").replace("0.75", "1.5"))
    time.sleep(2 * FILE_TIME_TICK_NS / 1e9)
    parsed = _parses(monkeypatch)
    assert cached_heading(suite_file) == ("renamed", Margins(top1=1.5, energy=0.2)) and len(parsed) == 1


def test_report_of_a_bad_suite_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPIKEBENCH_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmargins: {top1: -1}\nruns: []\n")
    assert main(["report", str(bad), "--results-dir", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.yaml" in err and "top1" in err and "\n" not in err and "Traceback" not in err
