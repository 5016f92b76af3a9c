"""Eval-only runs: evaluate a weights file (a paper's released checkpoint) instead of training.

One pass over the evaluation split at the recipe's official evaluation batch (``train.eval_batch_size``, else
``train.batch_size``) gives top-1/top-5 and, in the same pass (``measure_energy``'s ``on_output``), the per-layer
firing rates and the energy in both conventions. The batch-1 evaluation then depends on the model:

- batch-dependent by structure (``harness.audit.batch_dependent``: samples of a batch are coupled): every image
  again at batch 1, the top-1 at batch 1 measured;
- batch-independent by structure: a seeded subset of ``BATCH1_CHECK_IMAGES`` images at batch 1, predictions
  compared image by image with the official pass (and the largest logit difference). When no prediction changes,
  the top-1 at batch 1 is the official one (recorded as such); when one does, every image is evaluated at batch 1.

NeuroBench's metrics are measured in the same official-batch pass, on every image (``measure_energy``'s
``neurobench``). The run writes ``config.json``, ``energy.json`` (the per-layer audit),
``firing.json`` / ``firing.md`` (per-layer firing rates per time step, block x layer), the official pass's
per-image predictions (``harness.engine.predictions``) and ``final.json``, each
atomically, ``final.json`` last: a run without it did not finish and is evaluated again.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from harness.atomicfile import atomic_write_text
from harness.audit import batch_dependent, load_weights
from harness.data import build_dataset, dataset_info
from harness.engine.data import seeded_subset
from harness.engine.predictions import write_predictions
from harness.engine.distributed import DistInfo
from harness.engine.provenance import code_fingerprint, provenance, run_code
from harness.engine.spec import TrainSpec
from harness.engine.trainer import resolve_device
from harness.metrics import count_params, measure_energy, peak_memory_mb, reset_peak_memory, topk_correct
from harness.metrics.layer_rates import layer_rates, render_layer_rates
from harness.metrics.neurobench_metrics import NEUROBENCH_KEYS
from harness.weights.locate import file_sha256

BATCH1_CHECK_IMAGES = 64
CHECK_SEED_SALT = 0xB1  # the batch-1 subset differs from a training subset drawn with the same seed


class WeightsMismatchError(ValueError):
    """The weights file is not the one the run id names (its SHA-256 changed since the suite was expanded)."""


def build_loaded_model(spec: TrainSpec, device: torch.device | str = "cpu") -> nn.Module:
    """The run's model with the weights file loaded (``harness.audit.WeightsError``, one line, when it cannot be),
    in eval mode. On the ``meta`` device it only checks that the file fits, at no cost in memory."""
    recipe = spec.resolved_recipe()
    with torch.device(device):
        model = spec.create_model(recipe)
    with warnings.catch_warnings():  # on meta, torch warns that each copy is a no-op: that is the point
        warnings.filterwarnings("ignore", message=".*to a meta parameter.*")
        load_weights(model, spec.weights)
    return model.eval()


def evaluate_weights(spec: TrainSpec, run_dir: Path) -> dict[str, Any]:
    """Evaluate ``spec.weights`` into ``run_dir`` and return ``final.json``'s content (see the module docstring)."""
    started = time.perf_counter()
    path = Path(spec.weights)
    sha = file_sha256(path)
    if spec.weights_sha256 is not None and sha != spec.weights_sha256:
        raise WeightsMismatchError(f"{path}: SHA-256 {sha}, the run id names {spec.weights_sha256}: the file changed "
                                   f"since the suite was expanded; run the suite again")
    device = resolve_device(spec.device, DistInfo())  # one process, as a single-device training run
    reset_peak_memory(device)
    recipe = spec.resolved_recipe()
    model = build_loaded_model(spec, device)
    info = dataset_info(spec.dataset)
    split = spec.eval_split or ("val" if "val" in info["splits"] else "test")
    T = spec.time_steps()
    official = recipe.train.eval_batch_size or recipe.train.batch_size
    images = eval_images(spec, split, T, recipe, official)
    _write_config(spec, recipe, run_dir, {"T": T, "eval_split": split, "eval_samples": len(images),
                                          "eval_batch": official, "device": str(device), "params": count_params(model),
                                          "weights": str(path), "weights_sha256": sha})
    dependent = batch_dependent(model)
    check = _check_indices(len(images), dependent, spec.seed)
    phases = _Phases()
    with phases("official_batch"):
        first = _official_pass(model, images, official, device, T, check, spec.num_workers)
    with phases("batch1"):
        batch1 = _batch1(model, images, first, check, dependent, device)
    neurobench = {**first.report.neurobench, "images": first.report.images}
    rates = _write_artifacts(run_dir, first, neurobench, f"{spec.model}: firing rates, {spec.dataset}/{split}, T={T}")
    write_predictions(run_dir, first.predictions, info["num_classes"], split=split, eval_batch=official,
                      weights_sha256=sha)
    energy = first.report.summary()
    energy["paper"]["dense_sops"] = sum(r.T * r.flops for r in first.report.paper_rows if r.input != "image")
    top1 = first.top1
    final = {
        "status": "finished", "eval_only": True,
        "message": f"evaluated {path.name} on {len(images)} {spec.dataset}/{split} images at batch {official} "
                   f"and batch 1 ({batch1['method']})",
        "weights": {"file": str(path), "sha256": sha},
        "eval_images": len(images), "eval_batch": official, "batch_dependent": dependent,
        "last": {"eval_top1": top1, "eval_top5": first.top5, "eval_loss": first.loss,
                 "eval_img_s": len(images) / first.seconds},
        "best_top1": None, "best_epoch": None,
        "top1_batch1": batch1["top1"], "top1_batch_diff": top1 - batch1["top1"], "batch1": batch1,
        "energy": energy, "neurobench": {key: neurobench[key] for key in NEUROBENCH_KEYS},
        "neurobench_images": neurobench["images"], "firing_rate_per_step": _overall_per_step(rates),
        "params": count_params(model), "epochs_completed": 0, "global_step": 0,
        "wall_time_s": time.perf_counter() - started, "phase_seconds": phases.seconds,
        "peak_memory_mb": peak_memory_mb(device),
        "code_fingerprint": code_fingerprint(*run_code(spec.model, spec.recipe, recipe.model_dump(mode="json"))),
    }
    atomic_write_text(json.dumps(final, indent=1), run_dir / "final.json")
    return final


def _write_artifacts(run_dir: Path, first: _OfficialPass, neurobench: dict[str, Any], title: str) -> dict[str, Any]:
    """``energy.json`` (both conventions' audits), ``firing.json`` and ``firing.md``; returns the firing rates."""
    atomic_write_text(json.dumps({**first.report.as_dict(), "neurobench": neurobench}, indent=1),
                      run_dir / "energy.json")
    rates = layer_rates(first.firing, first.report.T, first.report.images)
    atomic_write_text(json.dumps(rates, indent=1), run_dir / "firing.json")
    atomic_write_text(render_layer_rates(rates, title), run_dir / "firing.md")
    return rates


class _Phases:
    """Wall seconds of the run's passes, by name (``with phases("batch1"): ...``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started


def eval_images(spec: TrainSpec, split: str, T: int, recipe, official: int) -> Dataset:
    """The evaluated images: the split, or its seeded subset; with ``limit_eval_batches``, its first batches."""
    data = build_dataset(spec.dataset, split, root=spec.data_root, T=T, recipe=recipe.data, **spec.dataset_options)
    images = seeded_subset(data, spec.eval_subset, spec.seed)
    if spec.limit_eval_batches is not None:
        images = Subset(images, range(min(len(images), spec.limit_eval_batches * official)))
    if len(images) == 0:
        raise ValueError(f"{spec.dataset}/{split}: no images to evaluate")
    return images


def _write_config(spec: TrainSpec, recipe, run_dir: Path, resolved: dict[str, Any]) -> None:
    dump = recipe.model_dump(mode="json")
    config = {"spec": spec.model_dump(mode="json"), "recipe": dump, "seed": spec.seed,
              "resolved": {**resolved, "eval_only": True},
              "provenance": provenance(*run_code(spec.model, spec.recipe, dump))}
    atomic_write_text(json.dumps(config, indent=1, default=str), run_dir / "config.json")


def _check_indices(count: int, dependent: bool, seed: int) -> list[int]:
    """The images evaluated at batch 1: all of them for a batch-dependent model, else a seeded subset."""
    if dependent or count <= BATCH1_CHECK_IMAGES:
        return list(range(count))
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 1000003 + CHECK_SEED_SALT))
    return sorted(order[:BATCH1_CHECK_IMAGES].tolist())


@dataclass
class _Tally:
    """What the official pass collects from each batch's logits: hits, loss, every image's prediction, and the
    logits of the images the batch-1 check compares (only those: the pass keeps no more than evaluation does)."""

    check: set[int]
    labels: torch.Tensor | None = None
    seen: int = 0
    sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # loss, top-1 hits, top-5 hits
    predictions: list[torch.Tensor] = field(default_factory=list)
    check_logits: dict[int, torch.Tensor] = field(default_factory=dict)

    def add(self, output: torch.Tensor) -> None:
        logits, labels = output.float().cpu(), self.labels
        hits = topk_correct(logits, labels, (1, 5))
        self.sums[0] += float(F.cross_entropy(logits, labels, reduction="sum"))
        self.sums[1] += hits[1]
        self.sums[2] += hits[5]
        self.predictions.append(logits.argmax(1))
        for row in range(len(labels)):
            if self.seen + row in self.check:
                self.check_logits[self.seen + row] = logits[row].clone()
        self.seen += len(labels)


@dataclass
class _OfficialPass:
    report: Any
    firing: dict[str, Any]
    top1: float
    top5: float
    loss: float
    seconds: float
    predictions: torch.Tensor
    check_logits: dict[int, torch.Tensor]


def _official_pass(model: nn.Module, images: Dataset, batch: int, device: torch.device, T: int, check: list[int],
                   workers: int) -> _OfficialPass:
    """Top-1/top-5, firing rates, energy and NeuroBench's metrics of every image at the official batch, in one
    pass."""
    tally = _Tally(set(check))
    loader = DataLoader(images, batch_size=batch, shuffle=False, num_workers=workers)

    def inputs():
        for x, y in loader:
            tally.labels = y
            yield x.to(device)

    started = time.perf_counter()
    report = measure_energy(model, inputs(), T, on_output=tally.add, neurobench=True)
    seconds = time.perf_counter() - started
    n = tally.seen
    firing = {"per_layer": report.firing_per_layer, "overall": report.firing_overall,
              "never_called": report.lif_never_called, "per_layer_step": report.firing_per_layer_step}
    return _OfficialPass(report, firing, 100.0 * tally.sums[1] / n, 100.0 * tally.sums[2] / n,
                         tally.sums[0] / n, seconds, torch.cat(tally.predictions), tally.check_logits)


@torch.no_grad()
def _batch1(model: nn.Module, images: Dataset, first: _OfficialPass, check: list[int], dependent: bool,
            device: torch.device) -> dict[str, Any]:
    """Top-1 at batch 1: measured on every image, or inferred from an image-by-image check (module docstring)."""
    changes, max_diff, correct = 0, 0.0, 0
    for index in check:
        x, y = images[index]
        logits = model(x.unsqueeze(0).to(device)).float().cpu()[0]
        prediction = int(logits.argmax())
        changes += prediction != int(first.predictions[index])
        correct += prediction == int(y)
        if index in first.check_logits:
            max_diff = max(max_diff, float((logits - first.check_logits[index]).abs().max()))
    every = len(check) == len(images)
    result = {"images": len(check), "prediction_changes": changes, "max_logit_diff": max_diff}
    if every:
        why = "batch-dependent model" if dependent else "batch-independent model, every image"
        return {**result, "method": f"every image at batch 1 ({why})", "top1": 100.0 * correct / len(check)}
    if changes == 0:
        return {**result, "method": f"batch-independent model: {len(check)} seeded images at batch 1, predictions "
                                    f"identical to the official batch's, so top-1 at batch 1 = official",
                "top1": first.top1}
    full = _batch1(model, images, first, list(range(len(images))), dependent, device)
    return {**full, "method": f"batch-independent by structure, yet {changes} of {len(check)} seeded images "
                              f"changed prediction at batch 1: every image at batch 1"}


def _overall_per_step(rates: dict[str, Any]) -> list[float] | None:
    """The mean firing rate of the layers at each time step (layers with a time axis, unweighted)."""
    rows = [r["per_step"] for r in rates["layers"] if r["per_step"]]
    if not rows:
        return None
    return [sum(step) / len(rows) for step in zip(*rows)]
