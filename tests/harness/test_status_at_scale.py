"""``status`` on many runs: unchanged runs are not read again (``harness.status_index``), the checkout's code
fingerprints are kept across processes until a source changes, and the output is that of a full read."""

import json
import shutil
import time
from pathlib import Path

import pytest
from benchmark_scripts import load_script

from harness import runs, suite
from harness.atomicfile import atomic_write_text
from harness.cli import main
from harness.engine import provenance
from harness.status_index import INDEX_NAME
from harness.suite import FILE_TIME_TICK_NS

REPO = Path(__file__).parents[2]


def _scale():
    """``benchmarks/scale.py``, which writes synthetic finished runs in the real format."""
    return load_script("scale")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """34 synthetic runs (one failed) of this checkout in 2 suites."""
    base = tmp_path_factory.mktemp("status")
    _, every, results = _scale().generate(base, 34, 2)
    return every, results


@pytest.fixture
def results(written, tmp_path):
    every, root = written
    shutil.copytree(root, tmp_path / "results")
    return every, tmp_path / "results"


def _status(capsys, every: Path, root: Path) -> list[str]:
    assert main(["status", str(every), "--results-dir", str(root)]) == 0
    return capsys.readouterr().out.splitlines()


def test_a_second_status_reads_only_changed_runs_and_prints_the_same(results, capsys, monkeypatch):
    every, root = results
    first = _status(capsys, every, root)
    assert (root / INDEX_NAME).is_file() and first[-1] == "all: 1 failed, 33 finished"
    read = set()
    original = Path.read_bytes

    def spy(self):
        if self.parent.parent.name == "runs":
            read.add(self.parent.name)
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", spy)
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: spy(self).decode())
    assert _status(capsys, every, root) == first and read == set()
    changed = next(line.split()[1] for line in first if line.startswith("finished"))
    final = json.loads((root / "runs" / changed / "final.json").read_text())
    final["last"]["eval_top1"] = 12.345
    atomic_write_text(json.dumps(final), root / "runs" / changed / "final.json")
    read.clear()
    after = _status(capsys, every, root)
    assert read == {changed} and next(line for line in after if changed in line).endswith("top1=12.35")
    (root / INDEX_NAME).unlink()
    assert _status(capsys, every, root) == after, "a full read gives what the index gave"


@pytest.mark.parametrize("content", ["{not json", json.dumps({"version": 1, "runs": {"x": {"stamp": 3}}}), "[]"])
def test_a_damaged_index_is_rebuilt(results, capsys, content):
    every, root = results
    first = _status(capsys, every, root)
    (root / INDEX_NAME).write_text(content)
    assert _status(capsys, every, root) == first
    assert len(json.loads((root / INDEX_NAME).read_text())["runs"]) == 34


def test_a_stale_run_is_found_through_the_index(results, capsys):
    every, root = results
    finished = next(line.split()[1] for line in _status(capsys, every, root) if line.startswith("finished"))
    directory = root / "runs" / finished
    config = json.loads((directory / "config.json").read_text())
    config["provenance"]["code_fingerprint"] = "0" * 16
    atomic_write_text(json.dumps(config), directory / "config.json")
    lines = _status(capsys, every, root)
    stale = next(i for i, line in enumerate(lines) if directory.name in line)
    assert lines[stale].startswith("stale") and lines[-1] == "all: 1 failed, 32 finished, 1 stale"


def _fresh_process() -> None:
    """What a new process starts with: no fingerprint or stamps remembered."""
    for cached in (runs.checkout_fingerprint, runs._stored_fingerprints, suite.code_stamps):
        cached.cache_clear()


def test_fingerprints_are_kept_across_processes_until_a_source_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEBENCH_CACHE", str(tmp_path / "cache"))
    checkout = tmp_path / "checkout"
    for part in suite.CODE:
        shutil.copytree(REPO / part, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(suite, "PACKAGE_SUITES", checkout / "suites")
    calls = []
    real = provenance.code_fingerprint
    monkeypatch.setattr(provenance, "code_fingerprint", lambda *args: calls.append(args) or real(*args))
    _fresh_process()
    first = runs.checkout_fingerprint("sdt_2_512.cifar10", "sdt_cifar10", None)
    assert first == real("sdt_2_512.cifar10", "sdt_cifar10") and len(calls) == 1
    _fresh_process()
    assert runs.checkout_fingerprint("sdt_2_512.cifar10", "sdt_cifar10", None) == first and len(calls) == 1
    lif = checkout / "zoo" / "core" / "lif.py"
    lif.write_text(lif.read_text() + "\n# an edit\n")
    _fresh_process()
    assert runs.checkout_fingerprint("sdt_2_512.cifar10", "sdt_cifar10", None) == first and len(calls) == 2
    _fresh_process()


def test_an_unchanged_suite_is_not_parsed_again_and_a_changed_one_is(results, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEBENCH_CACHE", str(tmp_path / "cache"))
    every, root = results
    suites = tmp_path / "suites"
    shutil.copytree(every.parent, suites)
    time.sleep(2 * FILE_TIME_TICK_NS / 1e9)  # a suite file written as it is read is not kept (it may have changed)
    first = _status(capsys, suites / "all.yaml", root)
    parsed = []
    original = suite.load_suite
    monkeypatch.setattr(suite, "load_suite", lambda *args: parsed.append(args) or original(*args))
    assert _status(capsys, suites / "all.yaml", root) == first and parsed == []
    included = suites / "site1.yaml"
    included.write_text(included.read_text().replace("seed: 0", "seed: 7", 1))
    time.sleep(2 * FILE_TIME_TICK_NS / 1e9)
    again = _status(capsys, suites / "all.yaml", root)
    assert [Path(args[0]).name for args in parsed] == ["all.yaml", "site0.yaml", "site1.yaml"]
    assert again[-1] == "all: 1 failed, 32 finished, 1 pending"
