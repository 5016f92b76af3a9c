"""``harness verify``: re-evaluate a run's checkpoint and compare its predictions image by image with the recorded ones.

The first N images of the run's evaluation set are evaluated again as the run evaluated them: the same images in
the same order, in the same batches (a batch-dependent model's prediction depends on its batch, so every batch
holding one of the N images is evaluated whole and compared; a multi-process evaluation's shares are evaluated
one after the other, each in its own batches), the same autocast dtype and layout, the run's thread
count. A trained run's checkpoint is the one its ``predictions.json`` names; an eval-only run's, its weights file.

Exact mode (fp32, no channels-last, no compile, on CPU both when the run was computed and now): "verified" only
when every prediction is identical. Any other numerics (bf16 or AMP, channels-last, a GPU on either side) change
the rounding, and a spike near its threshold can flip, so "verified" allows a stated share of disagreements
(``--tolerance``, default ``DEFAULT_TOLERANCE`` of the compared images). The verdict, its date and its figures go
to ``verification.json`` beside the run.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.bundle import BundleError
from harness.bundle.origin import DISAGREES, ORIGIN_NAME, VERIFICATION_NAME, VERIFIED
from harness.bundle.manifest import CHECKPOINT_FILES
from harness.bundle.selection import checkpoint_file
from harness.data import DatasetError
from harness.atomicfile import atomic_write_text
from harness.engine.predictions import PredictionsError, interleave, read_predictions
from harness.runs import RunRecord, read_json
from harness.weights.store import hash_file

DEFAULT_TOLERANCE = 0.01  # share of compared images whose prediction may differ outside exact mode


@dataclass(frozen=True)
class Verdict:
    """The outcome of one re-evaluation."""

    run_id: str
    verdict: str  # VERIFIED or DISAGREES
    images: int
    disagreements: int
    mode: str  # "exact" or "tolerant"
    tolerance: float
    allowed: int
    device: str
    checkpoint_sha256: str
    date: str
    first_disagreements: list[int]

    def line(self) -> str:
        allowance = f"tolerance {self.tolerance:g} of the images: at most {self.allowed} may differ"
        rule = f"{self.mode} mode: " + ("every prediction identical" if self.tolerance == 0 else allowance)
        if self.verdict == VERIFIED:
            return (f"{self.run_id}: verified: {self.images - self.disagreements}/{self.images} predictions identical "
                    f"({rule}; {self.device})")
        return (f"{self.run_id}: NOT verified: {self.disagreements} of {self.images} predictions differ ({rule}; "
                f"first at images {self.first_disagreements})")


def expected_checkpoint_sha256(record: RunRecord) -> str | None:
    """The SHA-256 the run's weights must have: the checkpoint an imported run's ``origin.json`` names, else an
    eval-only run's weights file; None for a trained run whose checkpoint is not on record."""
    origin = read_json(record.dir / ORIGIN_NAME) or {}
    recorded = (origin.get("checkpoint") or {}).get("sha256")
    return recorded or ((record.final or {}).get("weights") or {}).get("sha256")


def find_checkpoint(record: RunRecord, weights: str | None) -> tuple[Path, str]:
    """The weights to evaluate and their SHA-256: ``weights`` when given, else the bundled copy, else (a local run)
    its checkpoint; refused when their SHA-256 is not the one the run recorded. An imported run's recorded paths
    belong to another machine and are not followed."""
    expected = expected_checkpoint_sha256(record)
    bundled = [record.dir / name for name in CHECKPOINT_FILES if (record.dir / name).is_file()]
    local = checkpoint_file(record) if not (record.dir / ORIGIN_NAME).is_file() else None
    path = Path(weights) if weights else (bundled[0] if bundled else local)
    if path is None or not path.is_file():
        where = f"--weights {weights}" if weights else f"run {record.dir.name}"
        raise BundleError(f"{where}: no checkpoint to evaluate; pass the run's weights file with --weights FILE")
    sha = hash_file(path).sha256
    if expected is not None and sha != expected:
        raise BundleError(f"{path}: SHA-256 {sha}, the run's checkpoint is {expected}: not the weights that gave its "
                          f"predictions")
    return path, sha


def _exact(recipe, recorded_device: str, device) -> bool:
    train = recipe.train
    return (train.precision == "fp32" and not train.channels_last and not train.compile and not train.fast
            and str(recorded_device).startswith("cpu") and device.type == "cpu")


def verify_run(directory: Path, images: int | None = None, weights: str | None = None, data_root: str | None = None,
               device: str = "cpu", tolerance: float | None = None, record: bool = True) -> Verdict:
    """Re-evaluate the run in ``directory`` on its first ``images`` evaluation images (all recorded ones when None)
    and compare (module docstring); writes ``verification.json`` beside the run when ``record``."""
    import torch

    from harness.engine.eval_only import build_loaded_model
    from harness.launch.worker import train_spec, use_threads

    run = RunRecord(directory)
    spec = run.spec
    try:
        recorded = read_predictions(directory)
    except PredictionsError as err:
        raise BundleError(str(err)) from None
    if recorded is None:
        raise BundleError(f"run {spec.run_id}: recorded no per-image predictions ({directory}); nothing to compare")
    predictions, meta = recorded
    path, sha = find_checkpoint(run, weights)
    use_threads(spec.threads)
    base = train_spec(spec.model_copy(update={"weights": None, "weights_sha256": None, "weights_file": None}),
                      data_root)
    tspec = base.model_copy(update={"weights": str(path), "device": device})
    target = torch.device(device)
    model = build_loaded_model(tspec, target)
    recipe = tspec.resolved_recipe()
    mode_exact = _exact(recipe, run.config.get("resolved", {}).get("device", "cpu"), target)
    world = meta.get("world_size", 1)
    try:
        new = _predict(tspec, recipe, spec.eval_only, meta,
                       _count(images, len(predictions), meta["eval_batch"] * world), model, target)
    except DatasetError as err:
        raise BundleError(f"run {spec.run_id}: {str(err).splitlines()[0]} (pass --data-root)") from None
    verdict = _judge(spec.run_id, predictions[:len(new)].astype(np.int64), new, mode_exact, tolerance,
                     str(target), sha)
    if record:
        write_verdict(directory, verdict)
    return verdict


def _judge(run_id: str, old: np.ndarray, new: np.ndarray, exact: bool, tolerance: float | None, device: str,
           sha: str) -> Verdict:
    """The verdict on recorded (``old``) and re-evaluated (``new``) class ids under the mode's tolerance."""
    differ = np.flatnonzero(old != new)
    tol = 0.0 if exact and tolerance is None else (DEFAULT_TOLERANCE if tolerance is None else tolerance)
    allowed = math.floor(tol * len(new))
    return Verdict(run_id=run_id, verdict=VERIFIED if len(differ) <= allowed else DISAGREES, images=len(new),
                   disagreements=int(len(differ)), mode="exact" if exact else "tolerant", tolerance=tol,
                   allowed=allowed, device=device, checkpoint_sha256=sha,
                   date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   first_disagreements=[int(i) for i in differ[:10]])


def _count(images: int | None, recorded: int, step: int) -> int:
    """How many recorded images to evaluate: every batch holding one of the first ``images``, whole (``step``: the
    images one round of batches covers, the batch times the processes that shared the evaluation)."""
    wanted = recorded if images is None else min(images, recorded)
    return min(recorded, math.ceil(wanted / step) * step)


def _predict(tspec, recipe, eval_only: bool, meta: dict[str, Any], count: int, model, device) -> np.ndarray:
    """The predicted class ids of the first ``count`` evaluation images, evaluated as the run evaluated them."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from harness.engine.eval_only import eval_images
    from harness.engine.evaluate import evaluate
    from harness.engine.numerics import run_fast_choice
    from harness.engine.trainer import amp_dtype, eval_samples
    from zoo.core import to_channels_last, use_fast_paths

    T = tspec.time_steps()
    batch = meta["eval_batch"]
    if eval_only:  # evaluated in fp32, standard layout (harness.engine.eval_only)
        images, dtype, channels_last = eval_images(tspec, meta["split"], T, recipe, batch), None, False
    else:
        images = eval_samples(tspec, recipe, meta["split"], T)
        fast = run_fast_choice(recipe.train, device.type)
        dtype = amp_dtype(recipe.train, device)
        channels_last = fast.channels_last if fast else recipe.train.channels_last
        if fast:
            use_fast_paths(model)
        if channels_last:
            to_channels_last(model)
    if len(images) < count:
        raise BundleError(f"{tspec.dataset}/{meta['split']}: {len(images)} evaluation images here, the run recorded "
                          f"predictions for {count}: not the same evaluation set")
    world = meta.get("world_size", 1)  # rank r evaluated images r, r + world... in its own batches
    shares = []
    for rank in range(world):
        loader = DataLoader(Subset(images, range(rank, count, world)), batch_size=batch)
        out: list[torch.Tensor] = []
        evaluate(model, loader, device, dtype, None, channels_last, out)
        shares.append(torch.cat(out))
    return interleave(shares).numpy()


def write_verdict(directory: Path, verdict: Verdict) -> None:
    """``verification.json`` beside the run, atomically."""
    atomic_write_text(json.dumps(asdict(verdict), indent=1, sort_keys=True) + "\n", directory / VERIFICATION_NAME)
