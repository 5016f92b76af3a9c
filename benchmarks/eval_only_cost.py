"""Cost of an eval-only run (``harness.engine.eval_only``) against a plain evaluation pass of the same images.

    python -m harness bench eval_only_cost [--images N] [--repeats R] [--T 4]

For a batch-dependent model (a small QKFormer with the official SSA projection over T*B) and the same model made
batch-independent (``official_quirks: false``), on the digits test split at the digits recipe's batch (32): the
plain pass is ``harness.engine.evaluate.evaluate``; the eval-only run is ``evaluate_weights`` as a run executes it
(weights read and hashed, model and data built, official-batch pass with firing rates and energy, batch-1 pass or
check, NeuroBench). Repeats alternate the two; medians are reported with the eval-only run's phases.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import torch

import zoo
from harness.argtypes import OneLineParser, positive_int
from harness.data import build_dataset
from harness.engine.data import seeded_subset
from harness.engine.evaluate import evaluate
from harness.engine.eval_only import evaluate_weights
from harness.engine.spec import TrainSpec
from harness.metrics import FiringRates
from harness.metrics.energy import calibrate_batch_norm
from harness.recipe import load_recipe

MODEL = "qkformer_4_384.cifar10"
SMALL = {"widths": [16, 32, 64], "depths": [1, 1, 1], "heads": 2}
CONFIGS = {"batch-dependent (official SSA over T*B)": {}, "batch-independent": {"official_quirks": False}}


def _weights(directory: Path, T: int, overrides: dict) -> Path:
    """A small QKFormer with BN statistics set on digits (its neurons fire), saved as a spikebench state dict."""
    torch.manual_seed(0)
    model = zoo.create_model(MODEL, T=T, num_classes=10, **SMALL, **overrides)
    data = build_dataset("digits", "train", T=T, recipe=load_recipe("digits").data)
    calibrate_batch_norm(model, [torch.stack([data[i][0] for i in range(64)])])
    path = directory / f"w{len(list(directory.iterdir()))}.pth"
    torch.save(model.state_dict(), path)
    return path


def _plain(spec: TrainSpec, images: int, hooks: bool = False) -> tuple[float, float]:
    """Seconds of a plain evaluation (weights loaded, data built, as the eval-only run also does) and of its pass
    alone; ``hooks``: with the firing-rate hooks on (no op counter)."""
    from harness.engine.eval_only import build_loaded_model

    started = time.perf_counter()
    model = build_loaded_model(spec)
    data = build_dataset("digits", "test", T=spec.T, recipe=load_recipe("digits").data)
    loader = torch.utils.data.DataLoader(seeded_subset(data, images, spec.seed), batch_size=32, shuffle=False)
    with FiringRates(model) if hooks else contextlib.nullcontext():
        result = evaluate(model, loader, torch.device("cpu"))
    return time.perf_counter() - started, result["images"] / result["img_s"]


def _eval_only(spec: TrainSpec, directory: Path) -> tuple[float, dict[str, float]]:
    for path in directory.iterdir():
        path.unlink()
    started = time.perf_counter()
    final = evaluate_weights(spec, directory)
    return time.perf_counter() - started, final["phase_seconds"]


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=positive_int, default=359,
                        help="images of the digits test split (at most 359)")
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--T", type=positive_int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "weights").mkdir()
        for label, overrides in CONFIGS.items():
            weights = _weights(tmp / "weights", args.T, overrides)
            spec = TrainSpec(model=MODEL, dataset="digits", recipe="digits", T=args.T,
                             model_kwargs={**SMALL, **overrides}, eval_subset=args.images, weights=str(weights),
                             device="cpu")
            run_dir = tmp / "run"
            run_dir.mkdir(exist_ok=True)
            plain, passes, hooked, full, phases = [], [], [], [], []
            for _ in range(args.repeats):
                total, alone = _plain(spec, args.images)
                plain.append(total)
                passes.append(alone)
                hooked.append(_plain(spec, args.images, hooks=True)[1])
                seconds, phase = _eval_only(spec, run_dir)
                full.append(seconds)
                phases.append(phase)
            base, base_pass = statistics.median(plain), statistics.median(passes)
            parts = {name: statistics.median(p[name] for p in phases) for name in phases[0]}
            print(f"{label}: plain evaluation {base:.2f} s (its pass {base_pass:.2f} s); eval-only run "
                  f"{statistics.median(full):.2f} s = {statistics.median(full) / base:.2f}x; the pass with firing "
                  f"hooks only {statistics.median(hooked):.2f} s ({statistics.median(hooked) / base_pass:.2f}x the "
                  f"pass); phases: " + ", ".join(f"{name} {value:.2f} s ({value / base_pass:.2f}x the pass)"
                                                 for name, value in parts.items()))

if __name__ == "__main__":
    main()
