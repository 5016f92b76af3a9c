"""benchmarks/parity.py: the generated exact/fast suites and the parity table's per-seed values and verdicts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from harness.configfile import ConfigError, read_yaml
from harness.report.aggregate import verdict
from harness.suite import expand, load_suite

REPO = Path(__file__).parents[2]
SMOKE = REPO / "suites" / "smoke.yaml"
_spec = importlib.util.spec_from_file_location("parity_bench", REPO / "benchmarks" / "parity.py")
parity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parity)


def test_the_fast_suite_is_the_exact_one_with_the_fast_overrides_added_to_each_entry():
    source = read_yaml(SMOKE, "suite")
    suites = parity.parity_suites(source, [0, 1, 2], None, {"train.precision": "bf16"})
    exact, fast = suites["exact"], suites["fast"]
    assert exact["grid"] == source["grid"] and exact["seeds"] == fast["seeds"] == [0, 1, 2]
    assert exact["budget"] == fast["budget"] == source["budget"]
    for original, made in zip(source["grid"], fast["grid"]):
        kept = original.get("recipe_overrides", {})
        assert made["recipe_overrides"] == {**kept, "train.precision": "bf16"}
        assert {k: v for k, v in made.items() if k != "recipe_overrides"} == \
               {k: v for k, v in original.items() if k != "recipe_overrides"}
    assert any(e.get("recipe_overrides") for e in source["grid"])  # an entry's own overrides are kept (SDT v2)


def test_by_default_every_smoke_entry_runs_in_both_modes_with_train_fast_on_in_the_fast_one(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    parity.main(["suites", "--out", str(tmp_path)])
    source = read_yaml(SMOKE, "suite")
    exact, fast = read_yaml(tmp_path / "exact.yaml", "suite"), read_yaml(tmp_path / "fast.yaml", "suite")
    assert len(fast["grid"]) == len(exact["grid"]) == len(source["grid"])
    assert fast["seeds"] == exact["seeds"] == [0, 1, 2]
    assert all(entry["recipe_overrides"]["train.fast"] is True for entry in fast["grid"])
    assert not any("train.fast" in entry.get("recipe_overrides", {}) for entry in exact["grid"])
    exact_runs, fast_runs = expand(load_suite(tmp_path / "exact.yaml")), expand(load_suite(tmp_path / "fast.yaml"))
    assert sorted(map(_but_fast_mode, exact_runs)) == sorted(map(_but_fast_mode, fast_runs))
    assert {(s.model, s.dataset) for s in fast_runs} == \
           {(m, d) for e in source["grid"] for m in e["models"] for d in e["datasets"]}
    assert all(s.recipe_overrides.get("train.fast") is True for s in fast_runs)


def _but_fast_mode(spec) -> str:
    """A run's fields but its suite name, recipe hash and ``train.fast`` override: equal for its two modes."""
    fields = spec.model_dump(exclude={"suite", "recipe_hash"})
    fields["recipe_overrides"] = {k: v for k, v in fields["recipe_overrides"].items() if k != "train.fast"}
    return json.dumps(fields, sort_keys=True)


def test_models_keeps_only_the_named_configs():
    suites = parity.parity_suites(read_yaml(SMOKE, "suite"), [3], ["msvit_4_384.cifar10", "sdt_2_256.cifar10dvs"],
                                  parity.FAST_OVERRIDES)
    assert [(e["models"], e["datasets"]) for e in suites["exact"]["grid"]] == \
           [(["msvit_4_384.cifar10"], ["digits"]), (["sdt_2_256.cifar10dvs"], ["digits_dvs"])]


def test_written_suites_resolve_to_the_same_runs_in_both_modes_but_fast_recipes(tmp_path):
    exact_path, fast_path = parity.write_suites(SMOKE, tmp_path, [0, 1], ["spikformer_4_384.cifar10"],
                                                parity.FAST_OVERRIDES)
    exact, fast = expand(load_suite(exact_path)), expand(load_suite(fast_path))
    assert [(s.model, s.dataset, s.seed) for s in exact] == [(s.model, s.dataset, s.seed) for s in fast] == \
           [("spikformer_4_384.cifar10", "digits", 0), ("spikformer_4_384.cifar10", "digits", 1)]
    assert {s.run_id for s in exact}.isdisjoint(s.run_id for s in fast)
    assert all(s.recipe_overrides == {} for s in exact)
    assert all(s.recipe_overrides == parity.FAST_OVERRIDES for s in fast)


def test_a_bad_override_leaves_no_suite_behind(tmp_path):
    with pytest.raises(ConfigError, match=r"generated .*fast\.yaml: line \d+: field grid\.0\.recipe_overrides\."
                                          r"train\.precision"):
        parity.write_suites(SMOKE, tmp_path, [0], ["msvit_4_384.cifar10"], {"train.precision": "fp16"})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["suites", "--out", "X", "--fast-overrides", "[1]"],
     "argument --fast-overrides: expected a non-empty JSON object"),
    (["suites", "--out", "X", "--models", "nothing"], "no grid entry holds any of the models ['nothing']"),
    (["table", "missing_dir", "missing_dir"], "argument exact: expected a results directory holding runs/"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    argv = [str(tmp_path / a) if a in ("X", "missing_dir") else a for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        parity.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and message in err


def _run(results: Path, run_id: str, model: str, seed: int, best: float | None, status: str = "finished",
         fast: dict | None = None) -> None:
    """A run directory's records the table reads, with the keys the engine writes (final.json, spec.json,
    config.json's resolved fast settings)."""
    directory = results / "runs" / run_id
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"resolved": {"T": 4, "fast": fast}}))
    last = {"epoch": 2, "eval_top1": best, "eval_images": 359}
    (directory / "final.json").write_text(json.dumps({"status": status, "best_top1": best, "last": last}))
    (directory / "spec.json").write_text(json.dumps({"model": model, "dataset": "digits", "seed": seed}))


def test_the_table_lists_each_seed_and_judges_fast_against_the_exact_mean(tmp_path):
    exact, fast = tmp_path / "exact", tmp_path / "fast"
    for seed, (e, f) in enumerate([(90.0, 90.9), (91.0, 91.2), (92.0, 90.8)]):
        _run(exact, f"e{seed}", "spikformer_4_384.cifar10", seed, e)
        _run(fast, f"f{seed}", "spikformer_4_384.cifar10", seed, f)
    _run(exact, "m0", "msvit_4_384.cifar10", 0, 50.0)
    _run(fast, "m1", "msvit_4_384.cifar10", 0, None, status="diverged")
    rows = parity.parity_rows(parity.finished_runs(exact), parity.finished_runs(fast), {})
    msvit, spikformer = rows[2].split(" | "), rows[3].split(" | ")
    assert spikformer[2:7] == ["90.00 (0), 91.00 (1), 92.00 (2)", "90.90 (0), 91.20 (1), 90.80 (2)", "91.00",
                               "90.97", "-0.03"]
    assert spikformer[7] == "-0.03 [-2.7, +2.6] (n=3)"  # differences +0.9, +0.2, -1.2: -0.03 +- 4.30 x 1.07 / sqrt(3)
    assert spikformer[8].rstrip(" |") == verdict([90.9, 91.2, 90.8], 91.0, 1.0) == "reproduced"
    assert msvit[3] == "nan (0)" and msvit[7] == "-"
    assert msvit[8].rstrip(" |") == "not reproduced (1 of 1 seeds diverged)"


def test_the_verdict_is_floored_by_the_sampling_error_of_the_test_split(tmp_path):
    exact, fast = tmp_path / "exact", tmp_path / "fast"
    for seed in range(3):
        _run(exact, f"e{seed}", "sdt_2_512.cifar10", seed, 95.0)
        _run(fast, f"f{seed}", "sdt_2_512.cifar10", seed, 95.0 + 0.1 * seed)
    assert parity.eval_images(exact) == {"digits": 359}
    judged = parity.parity_verdict(parity.finished_runs(exact)[("sdt_2_512.cifar10", "digits")],
                                   parity.finished_runs(fast)[("sdt_2_512.cifar10", "digits")], 359)
    assert judged == "inconclusive"  # +-2.3 points of sampling error on 359 images exceed the 1-point margin
    assert parity.parity_verdict({0: 95.0}, {0: 95.0, 1: 95.1, 2: 95.2}, None) == "reproduced"
    assert parity.parity_verdict({}, {0: 95.0}, None) == "not run"


def test_the_table_names_the_fast_settings_each_fast_run_resolved(tmp_path):
    chosen = {"case": "native-bf16", "precision": "bf16", "channels_last": True, "compile": False, "lif": "fused"}
    _run(tmp_path, "f0", "sdt_2_512.cifar10", 0, 95.0, fast=chosen)
    _run(tmp_path, "f1", "sdt_2_512.cifar10", 1, 95.0, fast=chosen)
    _run(tmp_path, "e0", "sdt_2_512.cifar10", 2, 95.0)
    _run(tmp_path, "f3", "sdt_2_512.cifar10", 3, 95.0, fast=chosen)
    (tmp_path / "runs" / "f3" / "final.json").unlink()  # still training: not counted
    assert parity.fast_lines(tmp_path) == [
        "2 of the fast runs resolved fast mode as: case native-bf16, precision bf16, channels_last True, "
        "compile False, lif fused",
        "1 of the fast runs resolved fast mode as: none"]
