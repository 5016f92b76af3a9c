"""``harness export --format hf | timm-csv | neurobench``: runs in the formats the field reads.

Runs are pooled into configurations: the same spec but for its seed, computed by the same code (fingerprint);
runs of one configuration computed by different code stay apart, never averaged. Accuracies are the last epoch's
top-1/top-5 (``harness.tracking.final_metrics``), averaged over the configuration's seeds.

- ``hf``: per configuration a folder with a model card ``README.md`` whose YAML front matter holds a
  ``model-index`` (Hugging Face Hub model card metadata, https://huggingface.co/docs/hub/model-cards), and
  ``.eval_results/<dataset>.yaml`` in the Hub's newer evaluation-results form
  (https://huggingface.co/docs/hub/eval-results). The Hub links ``.eval_results`` to registered benchmark
  datasets; ``HUB_DATASETS`` names the Hub dataset of each dataset that has one, the others are named
  ``spikebench/<dataset>`` and will not join a Hub leaderboard.
- ``timm-csv``: one row per configuration in the columns of timm's ``results/results-imagenet.csv``
  (``TIMM_COLUMNS``: accuracies in %, ``param_count`` in millions), then spikebench's (``SPIKEBENCH_COLUMNS``):
  dataset, configuration id, T, energy per image in mJ under the ``paper`` convention (MSViT Eq. 18: 4.6 pJ per
  encoding-layer MAC, 0.9 pJ per synaptic operation; named in ``energy_convention``), its firing rate, the seeds.
- ``neurobench``: one JSON object per run with NeuroBench's metric names as ``neurobench.Benchmark.run`` returns
  them (v2.3: each metric under its class name, ``SynapticOperations`` a dict of ``Effective_MACs``,
  ``Effective_ACs`` and ``Dense``; ``ClassificationAccuracy`` a fraction), measured per image by the run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.bundle import BundleError
from harness.runs import RunRecord, read_json
from harness.tracking import final_metrics

FORMATS = ("hf", "timm-csv", "neurobench")
TIMM_COLUMNS = ("model", "top1", "top1_err", "top5", "top5_err", "param_count", "img_size", "crop_pct",
                "interpolation")
SPIKEBENCH_COLUMNS = ("dataset", "config", "T", "energy_mj", "energy_convention", "firing_rate", "seeds",
                      "code_fingerprint")
ENERGY_CONVENTION = "paper: MSViT Eq. 18, 4.6 pJ/MAC encoding + 0.9 pJ/SOP, per image"
HUB_DATASETS = {"cifar10": "uoft-cs/cifar10", "cifar100": "uoft-cs/cifar100", "imagenet": "ILSVRC/imagenet-1k"}
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet-1k",
                 "cifar10dvs": "CIFAR10-DVS", "dvs128": "DVS128 Gesture", "digits": "scikit-learn digits",
                 "digits_dvs": "scikit-learn digits (emulated events)"}


@dataclass
class Configuration:
    """Runs that differ only in their seed, computed by the same code."""

    key: str
    records: list[RunRecord] = field(default_factory=list)

    @property
    def spec(self):
        return self.records[0].spec

    @property
    def name(self) -> str:
        spec = self.spec
        variant = f"-{spec.variant}" if spec.variant else ""
        return f"{spec.model}{variant}.T{spec.T}.{spec.dataset}.{self.key[:8]}"

    def mean(self, metric: str) -> float | None:
        values = [final_metrics(r.final or {}).get(metric) for r in self.records]
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    @property
    def seeds(self) -> list[int]:
        return sorted(r.spec.seed for r in self.records)

    @property
    def code_fingerprint(self) -> str | None:
        return _fingerprint(self.records[0])


def _fingerprint(record: RunRecord) -> str | None:
    config = record.config.get("provenance", {})
    return (record.final or {}).get("code_fingerprint", config.get("code_fingerprint"))


def configurations(records: list[RunRecord]) -> list[Configuration]:
    """``records`` pooled by spec without seed (and suite) and by code fingerprint, in a stable order."""
    groups: dict[str, Configuration] = {}
    for record in records:
        what = record.spec.model_dump(mode="json", exclude={"seed", "suite", "weights_file"})
        text = json.dumps({"spec": what, "code": _fingerprint(record)}, sort_keys=True, default=str)
        key = hashlib.sha256(text.encode()).hexdigest()[:16]
        groups.setdefault(key, Configuration(key)).records.append(record)
    return sorted(groups.values(), key=lambda c: (c.spec.model, c.spec.dataset, c.spec.T, c.key))


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# ------------------------------------------------------------------ timm CSV
def timm_rows(configs: list[Configuration]) -> list[dict[str, Any]]:
    """One row per configuration in ``TIMM_COLUMNS + SPIKEBENCH_COLUMNS``."""
    rows = []
    for config in configs:
        top1, top5, params = config.mean("top1"), config.mean("top5"), config.mean("params")
        data = _data_recipe(config.records[0])
        rows.append({
            "model": config.spec.model, "top1": _fmt(top1, 3), "top1_err": _fmt(top1 and 100 - top1, 3),
            "top5": _fmt(top5, 3), "top5_err": _fmt(top5 and 100 - top5, 3),
            "param_count": _fmt(params and params / 1e6, 2), "img_size": _img_size(config.spec.dataset, data),
            "crop_pct": _fmt(data.eval_crop_pct, 3) if data else "",
            "interpolation": data.interpolation if data else "",
            "dataset": config.spec.dataset, "config": config.key, "T": config.spec.T,
            "energy_mj": _significant(config.mean("energy_mj")), "energy_convention": ENERGY_CONVENTION,
            "firing_rate": _significant(config.mean("firing_rate")), "seeds": " ".join(map(str, config.seeds)),
            "code_fingerprint": config.code_fingerprint or "",
        })
    return rows


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _significant(value: float | None) -> str:
    """Six significant digits: energies and rates span orders of magnitude."""
    return "" if value is None else f"{value:.6g}"


def _data_recipe(record: RunRecord):
    from harness.recipe import Recipe

    recipe = record.config.get("recipe")
    return Recipe.model_validate(recipe).data if isinstance(recipe, dict) else None


def _img_size(dataset: str, data) -> int:
    from harness.data import model_input_shape

    return model_input_shape(dataset, data)[1]


def timm_csv(configs: list[Configuration]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TIMM_COLUMNS + SPIKEBENCH_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(timm_rows(configs))
    return buffer.getvalue()


# ------------------------------------------------------------------ NeuroBench
def neurobench_results(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Per run: what it is, and its metrics under NeuroBench's names (runs without NeuroBench's metrics are left
    out: energy was off)."""
    results = []
    for record in sorted(records, key=lambda r: r.dir.name):
        final = record.final or {}
        measured = final.get("neurobench")
        if not isinstance(measured, dict) or not measured:
            continue
        audit = read_json(record.dir / "energy.json") or {}
        dense = (audit.get("neurobench") or {}).get("dense_ops")
        top1 = final_metrics(final).get("top1")
        synops = {"Effective_MACs": measured.get("effective_macs"), "Effective_ACs": measured.get("effective_acs")}
        if dense is not None:
            synops["Dense"] = dense
        spec = record.spec
        results.append({
            "run_id": spec.run_id, "model": spec.model, "dataset": spec.dataset, "T": spec.T, "seed": spec.seed,
            "metrics": {"Footprint": measured.get("footprint_bytes"),
                        "ConnectionSparsity": measured.get("connection_sparsity"),
                        "ActivationSparsity": measured.get("activation_sparsity"),
                        "SynapticOperations": synops,
                        "ClassificationAccuracy": None if top1 is None else top1 / 100},
        })
    return results


def neurobench_json(records: list[RunRecord]) -> str:
    from importlib import metadata

    try:
        version = metadata.version("neurobench")
    except metadata.PackageNotFoundError:
        version = None
    body = {"format": "neurobench", "neurobench_version": version, "per": "image",
            "results": neurobench_results(records)}
    return json.dumps(body, indent=1) + "\n"


# ------------------------------------------------------------------ Hugging Face
def model_index(config: Configuration) -> list[dict[str, Any]]:
    """The ``model-index`` metadata of one configuration: top-1 and top-5 (%) on its evaluation split."""
    spec = config.spec
    split = config.records[0].config.get("resolved", {}).get("eval_split")
    dataset = {"type": HUB_DATASETS.get(spec.dataset, f"spikebench/{spec.dataset}"),
               "name": DATASET_NAMES.get(spec.dataset, spec.dataset)}
    if split:
        dataset["split"] = split
    metrics = [{"type": "accuracy", "name": "Top-1 accuracy (%)", "value": _rounded(config.mean("top1"), 3)}]
    if config.mean("top5") is not None:
        metrics.append({"type": "top_5_accuracy", "name": "Top-5 accuracy (%)",
                        "value": _rounded(config.mean("top5"), 3)})
    return [{"name": config.name, "results": [{
        "task": {"type": "image-classification", "name": "Image Classification"},
        "dataset": dataset, "metrics": metrics}]}]


def eval_results(config: Configuration) -> list[dict[str, Any]]:
    """The ``.eval_results`` entries of one configuration (top-1 accuracy, %)."""
    spec = config.spec
    notes = (f"spikebench: top-1 (%) mean over seeds {config.seeds}, T={spec.T}, run ids "
             f"{' '.join(r.spec.run_id for r in config.records)}, code {config.code_fingerprint}")
    return [{"dataset": {"id": HUB_DATASETS.get(spec.dataset, f"spikebench/{spec.dataset}"), "task_id": "default"},
             "value": _rounded(config.mean("top1"), 3), "notes": notes}]


def model_card(config: Configuration) -> str:
    """A model card: the ``model-index`` front matter and a short text."""
    front = {"tags": ["spiking-neural-network", "spikebench", "image-classification"],
             "model-index": model_index(config)}
    spec = config.spec
    text = (f"# {config.name}\n\n{spec.model} (T={spec.T}) on {spec.dataset}, trained and evaluated by spikebench.\n"
            f"Seeds: {', '.join(map(str, config.seeds))}; top-1 {_fmt(config.mean('top1'), 2)} % (mean); "
            f"code fingerprint {config.code_fingerprint}.\n")
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n" + text


def write_hf(configs: list[Configuration], out: Path) -> list[Path]:
    """Per configuration ``<out>/<name>/README.md`` and ``<out>/<name>/.eval_results/<dataset>.yaml``."""
    written = []
    for config in configs:
        folder = out / config.name
        (folder / ".eval_results").mkdir(parents=True, exist_ok=True)
        _write(folder / "README.md", model_card(config))
        _write(folder / ".eval_results" / f"{config.spec.dataset}.yaml",
               yaml.safe_dump(eval_results(config), sort_keys=False))
        written += [folder / "README.md", folder / ".eval_results" / f"{config.spec.dataset}.yaml"]
    return written


def _write(path: Path, text: str) -> None:
    from harness.atomicfile import atomic_write_text

    atomic_write_text(text, path)


def export_format(kind: str, records: list[RunRecord], out: Path | None) -> list[Path]:
    """Write ``records`` in format ``kind`` (``FORMATS``) to ``out``: a folder for ``hf``, a file otherwise."""
    if kind not in FORMATS:
        raise BundleError(f"--format {kind!r}: expected one of {', '.join(FORMATS)}")
    if kind == "hf":
        return write_hf(configurations(records), Path(out or "hf"))
    path = Path(out or ("results-spikebench.csv" if kind == "timm-csv" else "neurobench.json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, timm_csv(configurations(records)) if kind == "timm-csv" else neurobench_json(records))
    return [path]
