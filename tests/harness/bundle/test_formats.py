"""``export --format hf | timm-csv | neurobench`` on a real tiny run, each checked against the format's documented
fields (listed here with their sources), and the pooling of seeds: one configuration per spec without its seed,
runs computed by other code kept apart."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from harness.cli import main

# timm's results CSV header: huggingface/pytorch-image-models, results/results-imagenet.csv (first line)
TIMM_HEADER = ["model", "top1", "top1_err", "top5", "top5_err", "param_count", "img_size", "crop_pct", "interpolation"]
# Hub model card metadata, model-index (https://huggingface.co/docs/hub/model-cards, "Evaluation Results"; the
# spec: huggingface/hub-docs modelcard.md): each result has task {type (required), name}, dataset {type, name
# (required), config, split, revision, args}, metrics [{type, value (required), name, config, args, verified}]
MODEL_INDEX = {"task": ({"type"}, {"type", "name"}),
               "dataset": ({"type", "name"}, {"type", "name", "config", "split", "revision", "args"}),
               "metric": ({"type", "value"}, {"type", "value", "name", "config", "args", "verified", "verifyToken"})}
# .eval_results/*.yaml (https://huggingface.co/docs/hub/eval-results): a list of entries with dataset {id, task_id
# (required), revision}, value (required), verifyToken, date, source {url (required with source), name, user},
# notes
EVAL_RESULTS = {"entry": ({"dataset", "value"}, {"dataset", "value", "verifyToken", "date", "source", "notes"}),
                "dataset": ({"id", "task_id"}, {"id", "task_id", "revision"})}


def _fields(mapping: dict, rule: tuple[set, set], what: str) -> None:
    required, allowed = rule
    assert required <= set(mapping) <= allowed, f"{what}: {sorted(mapping)}"


def _export(trained, fmt: str, out: Path, *targets: str, root: Path | None = None) -> None:
    targets = targets or (str(trained["suite"]),)
    assert main(["export", *targets, "--results-dir", str(root or trained["root"]), "--format", fmt,
                 "--out", str(out)]) == 0


def test_timm_csv_has_timms_columns_then_spikebenchs(trained, tmp_path):
    _export(trained, "timm-csv", tmp_path / "r.csv")
    with (tmp_path / "r.csv").open() as fh:
        reader = csv.DictReader(fh)
        header, rows = reader.fieldnames, list(reader)
    assert header[:len(TIMM_HEADER)] == TIMM_HEADER
    assert {"T", "energy_mj", "energy_convention", "firing_rate", "seeds"} <= set(header)
    (row,) = rows
    final = json.loads((trained["run"] / "final.json").read_text())
    assert float(row["top1"]) == pytest.approx(final["last"]["eval_top1"], abs=1e-3)
    assert float(row["top1"]) + float(row["top1_err"]) == pytest.approx(100)
    assert float(row["param_count"]) == pytest.approx(final["params"] / 1e6, abs=0.005)
    assert (row["img_size"], row["crop_pct"], row["interpolation"], row["T"]) == ("16", "1.000", "bilinear", "2")
    assert float(row["energy_mj"]) == pytest.approx(final["energy"]["paper"]["energy_mj"], rel=1e-3)
    assert row["energy_convention"].startswith("paper") and row["seeds"] == "0"


def _copy_run(trained, root: Path, seed: int, fingerprint: str | None = None) -> None:
    """The trained run again under ``root`` as if computed with another seed (and by other code)."""
    target = root / "runs" / f"{trained['run'].name}{seed}"
    shutil.copytree(trained["run"], target)
    spec = json.loads((target / "spec.json").read_text())
    (target / "spec.json").write_text(json.dumps({**spec, "seed": seed}))
    final = json.loads((target / "final.json").read_text())
    final["last"]["eval_top1"] += 10 * seed
    if fingerprint:
        final["code_fingerprint"] = fingerprint
    (target / "final.json").write_text(json.dumps(final))


def test_seeds_pool_into_one_row_and_other_code_stays_apart(trained, tmp_path):
    root = tmp_path / "results"
    shutil.copytree(trained["run"], root / "runs" / trained["run"].name)
    _copy_run(trained, root, 1)
    _copy_run(trained, root, 2, fingerprint="0123456789abcdef")
    _export(trained, "timm-csv", tmp_path / "r.csv", root=root)
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert sorted(r["seeds"] for r in rows) == ["0 1", "2"]
    pooled = next(r for r in rows if r["seeds"] == "0 1")
    top1 = json.loads((trained["run"] / "final.json").read_text())["last"]["eval_top1"]
    assert float(pooled["top1"]) == pytest.approx(top1 + 5, abs=1e-3)  # the mean of top1 and top1 + 10


def test_hf_model_card_and_eval_results_hold_the_documented_fields(trained, tmp_path):
    _export(trained, "hf", tmp_path / "hf")
    (card,) = (tmp_path / "hf").glob("*/README.md")
    text = card.read_text()
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    (entry,) = front["model-index"]
    assert set(entry) == {"name", "results"}
    (result,) = entry["results"]
    _fields(result["task"], MODEL_INDEX["task"], "task")
    _fields(result["dataset"], MODEL_INDEX["dataset"], "dataset")
    for metric in result["metrics"]:
        _fields(metric, MODEL_INDEX["metric"], "metric")
    top1 = json.loads((trained["run"] / "final.json").read_text())["last"]["eval_top1"]
    assert result["metrics"][0]["value"] == pytest.approx(top1, abs=1e-3)
    (results_file,) = card.parent.glob(".eval_results/*.yaml")
    entries = yaml.safe_load(results_file.read_text())
    assert isinstance(entries, list) and len(entries) == 1
    _fields(entries[0], EVAL_RESULTS["entry"], "eval result")
    _fields(entries[0]["dataset"], EVAL_RESULTS["dataset"], "eval result dataset")
    assert entries[0]["value"] == pytest.approx(top1, abs=1e-3)


def test_hf_files_parse_with_huggingface_hubs_own_readers(trained, tmp_path):
    hub = pytest.importorskip("huggingface_hub")
    _export(trained, "hf", tmp_path / "hf")
    (card,) = (tmp_path / "hf").glob("*/README.md")
    results = hub.ModelCard.load(card).data.eval_results
    assert [r.metric_type for r in results] == ["accuracy", "top_5_accuracy"]
    assert results[0].task_type == "image-classification" and results[0].dataset_split == "test"
    from huggingface_hub._eval_results import parse_eval_result_entries

    (results_file,) = card.parent.glob(".eval_results/*.yaml")
    (parsed,) = parse_eval_result_entries(yaml.safe_load(results_file.read_text()))
    assert parsed.dataset_id == "spikebench/digits" and parsed.task_id == "default"


def test_neurobench_json_uses_the_packages_metric_names(trained, tmp_path):
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, ClassificationAccuracy, SynapticOperations

    _export(trained, "neurobench", tmp_path / "nb.json")
    body = json.loads((tmp_path / "nb.json").read_text())
    (result,) = body["results"]
    names = {cls.__name__ for cls in (Footprint, ConnectionSparsity, ActivationSparsity, SynapticOperations,
                                      ClassificationAccuracy)}  # Benchmark.run keys its results by class name
    assert set(result["metrics"]) == names
    # SynapticOperations.compute's keys (neurobench/metrics/workload/synaptic_operations.py)
    assert set(result["metrics"]["SynapticOperations"]) == set(SynapticOperations().compute())
    final = json.loads((trained["run"] / "final.json").read_text())
    assert result["metrics"]["Footprint"] == final["neurobench"]["footprint_bytes"]
    assert result["metrics"]["ClassificationAccuracy"] == pytest.approx(final["last"]["eval_top1"] / 100)
    assert body["neurobench_version"] and result["run_id"] == trained["run"].name


def test_readmes_share_and_compare_commands_run_as_written(trained, tmp_path, monkeypatch, capsys):
    """README's "Share and compare results" block, with its suite replaced by the tiny trained one: exports read
    the trained results, import and verify a fresh results directory at "another site"."""
    import re
    import shlex

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("## Share and compare results", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]
    assert commands and all(c[:3] == ["python", "-m", "harness"] for c in commands)
    monkeypatch.chdir(tmp_path)
    for command in commands:
        argv = [str(trained["suite"]) if a == "suites/smoke.yaml" else a for a in command[3:]]
        root = trained["root"] if argv[0] == "export" else tmp_path / "other-site"
        monkeypatch.setenv("SPIKEBENCH_RESULTS", str(root))
        assert main(argv) == 0, argv
    assert "verified: 64/64" in capsys.readouterr().out
    assert (tmp_path / "other-site" / "imported" / "mylab" / trained["run"].name / "verification.json").is_file()
    assert (tmp_path / "results-smoke.csv").is_file() and (tmp_path / "neurobench-smoke.json").is_file()
    assert list((tmp_path / "hf-cards").glob("*/README.md"))
