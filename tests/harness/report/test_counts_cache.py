"""Parameter counts kept across processes: built once per (model, overrides) while the code stays as it was."""

import json

import pytest

from harness.report import counts

MODEL, OVERRIDES = "spikformer_4_384.cifar10", {"dim": 64, "depth": 1, "heads": 4}


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty user cache and no counts remembered by this process."""
    monkeypatch.setenv("SPIKEBENCH_CACHE", str(tmp_path / "cache"))

    def forget():
        counts._count.cache_clear()
        counts._stored_counts.cache_clear()
    forget()
    yield forget
    forget()


def _no_build(*args):
    pytest.fail("built a model whose count the cache holds")


def test_a_count_is_built_once_and_read_back_by_a_later_process(fresh, tmp_path, monkeypatch):
    import torch

    import zoo
    from harness.metrics.accuracy import count_params

    expected = count_params(zoo.create_model(MODEL, **OVERRIDES))
    assert counts.zoo_param_count(MODEL, OVERRIDES) == expected
    stored = json.loads((tmp_path / "cache" / f"{counts.PARAM_COUNTS}.json").read_text())
    assert list(stored["value"].values()) == [expected] and torch.__version__.split("+")[0] in stored["key"]
    fresh()  # as a new process: only the file remains
    monkeypatch.setattr(counts, "_built_count", _no_build)
    assert counts.zoo_param_count(MODEL, OVERRIDES) == expected


def test_other_code_builds_again(fresh, monkeypatch):
    counts.zoo_param_count(MODEL, OVERRIDES)
    fresh()
    monkeypatch.setattr(counts, "_counts_key", lambda: "another checkout")
    built = []
    monkeypatch.setattr(counts, "_built_count", lambda *args: built.append(args) or 7)
    assert counts.zoo_param_count(MODEL, OVERRIDES) == 7 and len(built) == 1


def test_a_model_the_zoo_cannot_build_warns_on_every_report_and_is_not_kept(fresh, tmp_path):
    with pytest.warns(UserWarning, match="no_such_model"):
        assert counts.zoo_param_count("no_such_model") is None
    fresh()
    with pytest.warns(UserWarning, match="no_such_model"):
        assert counts.zoo_param_count("no_such_model") is None
    assert not (tmp_path / "cache" / f"{counts.PARAM_COUNTS}.json").exists()


@pytest.mark.parametrize("content", ["not json", '{"key": "%s", "value": {"x": true}}', '{"key": "%s", "value": 3}'])
def test_a_damaged_cache_is_ignored(fresh, tmp_path, content):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"{counts.PARAM_COUNTS}.json").write_text(content.replace("%s", counts._counts_key()))
    assert counts.zoo_param_count(MODEL, OVERRIDES) > 0
