"""The per-user cache of facts that cost a heavy import: reused under the same key, recomputed otherwise."""

import json

import pytest

from harness.usercache import cache_dir, cached


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _counting(value):
    calls = []

    def compute():
        calls.append(1)
        return value
    return compute, calls


def is_list(value) -> bool:
    return isinstance(value, list)


def test_a_value_is_computed_once_per_key(cache):
    compute, calls = _counting(["a", "b"])
    assert cached("names", "v1", compute, is_list) == ["a", "b"]
    assert cached("names", "v1", compute, is_list) == ["a", "b"] and len(calls) == 1
    assert cached("names", "v2", compute, is_list) == ["a", "b"] and len(calls) == 2, "another version recomputes"
    assert json.loads((cache / "names.json").read_text()) == {"key": "v2", "value": ["a", "b"]}


@pytest.mark.parametrize("content", ["not json", '{"key": "v1", "value": 3}', '["v1"]'],
                         ids=["not-json", "invalid-value", "not-an-entry"])
def test_a_damaged_entry_is_recomputed_and_rewritten(cache, content):
    cache.mkdir()
    (cache / "names.json").write_text(content)
    compute, calls = _counting(["a"])
    assert cached("names", "v1", compute, is_list) == ["a"] and calls == [1]
    assert json.loads((cache / "names.json").read_text())["value"] == ["a"]


def test_a_link_is_not_followed(cache, tmp_path):
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({"key": "v1", "value": ["planted"]}))
    cache.mkdir()
    (cache / "names.json").symlink_to(elsewhere)
    compute, _ = _counting(["a"])
    assert cached("names", "v1", compute, is_list) == ["a"]
    assert json.loads(elsewhere.read_text())["value"] == ["planted"], "the link's target is left alone"


def test_an_unwritable_cache_still_gives_the_value(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("SPIKEBENCH_CACHE", str(blocker / "cache"))  # under a file: cannot be created
    compute, calls = _counting(["a"])
    assert cached("names", "v1", compute, is_list) == ["a"] and cached("names", "v1", compute, is_list) == ["a"]
    assert len(calls) == 2


def test_the_cache_follows_xdg_without_its_own_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("SPIKEBENCH_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "spikebench"
