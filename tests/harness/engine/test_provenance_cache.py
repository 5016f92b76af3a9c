"""The code fingerprint's per-file cache (``harness.engine.provenance.CodeFacts``): a process after the first parses
no unchanged file, an edited file is parsed again, a damaged or foreign cache is ignored, and the fingerprints are
the same with and without it."""

import hashlib
import json
import platform
import shutil
import subprocess

import pytest

from harness.engine import provenance
from harness.engine.provenance import REPO, code_modules
from harness.usercache import cache_dir

RUNS = [("qkformer_4_384.cifar10", "digits"), ("msvit_2_256.cifar10dvs", "digits_dvs")]
MODEL, RECIPE = RUNS[0]
PARSE_CACHES = (provenance._parse, provenance._imports, provenance._semantic_hash)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """An empty cache directory of this test's own; the in-process parse caches emptied (a fresh process)."""
    monkeypatch.setenv("SPIKEBENCH_CACHE", str(tmp_path / "cache"))
    _fresh_process()
    return tmp_path / "cache"


def _fresh_process():
    for cached in PARSE_CACHES:
        cached.cache_clear()


@pytest.fixture
def parses(monkeypatch):
    """The files parsed from now on (relative to their checkout's ``zoo``/``harness`` parent)."""
    parsed = []
    real = provenance._parse

    def counting(path, stamp):
        parsed.append(path)
        return real(path, stamp)
    monkeypatch.setattr(provenance, "_parse", counting)
    return parsed


def _without_cache(monkeypatch, tmp_path, runs=RUNS[:1]):
    """``code_modules`` of each of ``runs`` where no cache can be read or written (its directory would lie under a
    file)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with monkeypatch.context() as patch:
        patch.setenv("SPIKEBENCH_CACHE", str(blocker / "cache"))
        _fresh_process()
        modules = {run: code_modules(*run) for run in runs}
    _fresh_process()
    return modules


def test_a_later_process_parses_nothing_and_gets_the_same_fingerprints(cache, parses, monkeypatch, tmp_path):
    first = {run: code_modules(*run) for run in RUNS}
    assert parses and (cache / "code-facts.json").is_file()
    _fresh_process()
    parses.clear()
    assert {run: code_modules(*run) for run in RUNS} == first and parses == [], "every fact came from the cache"
    assert _without_cache(monkeypatch, tmp_path, RUNS) == first


def test_an_edited_file_alone_is_parsed_again(tmp_path, parses, monkeypatch):
    root = tmp_path / "repo"
    for package in ("zoo", "harness"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run(["git", "-C", str(root), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(root), "add", "zoo", "harness"], check=True)
    before = code_modules(MODEL, RECIPE, root=root)
    edited = root / "zoo/core/neuron.py"
    edited.write_text(edited.read_text() + "\nEDITED = 1\n")
    _fresh_process()
    parses.clear()
    after = code_modules(MODEL, RECIPE, root=root)
    assert set(parses) == {edited}, "only the edited file is parsed again"
    assert after["zoo/core/neuron.py"] != before["zoo/core/neuron.py"]
    assert {k: v for k, v in after.items() if k != "zoo/core/neuron.py"} == \
        {k: v for k, v in before.items() if k != "zoo/core/neuron.py"}
    _fresh_process()
    with monkeypatch.context() as patch:
        patch.setenv("SPIKEBENCH_CACHE", str(tmp_path / "other-cache"))
        assert code_modules(MODEL, RECIPE, root=root) == after, "the same hashes without the cache"


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """``code_modules`` of the first run computed without a cache, and the cache entry a first process writes."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPIKEBENCH_CACHE", str(tmp_path_factory.mktemp("filled")))
        _fresh_process()
        modules = code_modules(MODEL, RECIPE)
        entry = json.loads((cache_dir() / "code-facts.json").read_text())
    _fresh_process()
    return modules, entry


@pytest.mark.parametrize("damage", ["not json", "value-not-a-dict", "facts-damaged", "another-key"])
def test_a_damaged_or_foreign_cache_is_ignored_and_rewritten(cache, parses, filled, damage):
    reference, stored = filled
    cache.mkdir()
    entry = cache / "code-facts.json"
    if damage == "not json":
        entry.write_text('{"key": "trunc')
    elif damage == "value-not-a-dict":
        entry.write_text(json.dumps({"key": stored["key"], "value": ["a"]}))
    elif damage == "facts-damaged":
        value = {name: {"imports": "zoo", "hashes": {h: 3 for h in fact["hashes"]}}
                 for name, fact in stored["value"].items()}
        entry.write_text(json.dumps({"key": stored["key"], "value": value}))
    else:  # another Python version or another version of the hashing code stored it: planted wrong hashes
        value = {name: {**fact, "hashes": {h: "planted" for h in fact["hashes"]}}
                 for name, fact in stored["value"].items()}
        entry.write_text(json.dumps({"key": "3.0.0 0000000000000000", "value": value}))
    assert code_modules(MODEL, RECIPE) == reference
    assert parses, "the facts were computed again"
    assert json.loads(entry.read_text()) == stored, "and stored again"


def test_the_cache_key_follows_python_and_the_hashing_code():
    key = provenance._facts_key()
    assert key.split()[0] == platform.python_version()
    assert key.split()[1] == hashlib.sha256((REPO / "harness/engine/provenance.py").read_bytes()).hexdigest()[:16]
