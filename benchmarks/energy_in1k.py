"""Energy per image of every ImageNet configuration in the zoo, with random weights, beside the paper's value.

No ImageNet weights or images are available here, so every number below is for randomly initialised
weights (seeded) on synthetic N(0,1) 224x224 images, at the firing rates those weights produce:
- ``init``: BatchNorm at its initial statistics (identity), as a freshly built model runs in eval mode;
- ``bn-cal``: BatchNorm statistics first set from the same images, so neurons see normalised inputs.
Neither is the trained model's energy. What carries over from a trained model is the dense op count, so the
table also gives the overall firing rate the paper's energy implies: (E_paper - E_MAC x MACs) / (E_AC x dense
ops of the AC layers), to set against the rates the papers report (MSViT 0.306, QKFormer 0.285).

    .venv/bin/python benchmarks/energy_in1k.py [--batches 2] [--out DIR] [--models PATTERN]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import zoo
from harness.metrics.energy import (E_AC_PJ, E_MAC_PJ, PJ_PER_MJ, EnergyReport, calibrate_batch_norm,
                                    measure_energy, synthetic_images)


def implied_firing_rate(report: EnergyReport, claimed_mj: float | None) -> float | None:
    """The overall density of AC layers that makes the measured op counts give the paper's energy."""
    if claimed_mj is None:
        return None
    dense_ac = sum(r.dense for r in report.rows if r.op_class == "AC")
    return (claimed_mj * PJ_PER_MJ - E_MAC_PJ * report.macs) / (E_AC_PJ * dense_ac)


def measure(name: str, batches: int, seed: int, out: Path) -> dict:
    torch.manual_seed(seed)
    model = zoo.create_model(name)
    card = model.card
    images = synthetic_images(card.input_shape, batches, 1, seed)
    started = time.perf_counter()
    init = measure_energy(model, images)
    calibrate_batch_norm(model, images)
    calibrated = measure_energy(model, images)
    row = {
        "model": name, "family": card.family, "params": init.params, "claimed_params_m": card.claimed_params_m,
        "claimed_energy_mj": card.claimed_energy_mj, "images": init.images,
        "init_energy_mj": init.energy_mj, "init_firing": init.firing_overall,
        "cal_energy_mj": calibrated.energy_mj, "cal_firing": calibrated.firing_overall,
        "macs": calibrated.macs, "dense_ac": sum(r.dense for r in calibrated.rows if r.op_class == "AC"),
        "implied_firing": implied_firing_rate(calibrated, card.claimed_energy_mj),
        "seconds": time.perf_counter() - started,
    }
    (out / f"{name}.json").write_text(json.dumps({"summary": row, "init": init.as_dict(),
                                                  "bn_calibrated": calibrated.as_dict()}, indent=1))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=2, help="images (batch 1 each) per model")
    parser.add_argument("--models", default="*.in1k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="directory for per-model audit JSON (default: temporary)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out or tempfile.mkdtemp(prefix="energy_in1k_"))
    out.mkdir(parents=True, exist_ok=True)
    print("| model | params | paper mJ | init: mJ (firing) | bn-cal: mJ (firing) | MACs/img | dense AC ops/img "
          "| firing implied by paper | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in zoo.list_models(args.models):
        r = measure(name, args.batches, args.seed, out)
        claimed = "-" if r["claimed_energy_mj"] is None else f"{r['claimed_energy_mj']:.2f}"
        implied = "-" if r["implied_firing"] is None else f"{r['implied_firing']:.3f}"
        print(f"| {name} | {r['params'] / 1e6:.2f}M | {claimed} | {r['init_energy_mj']:.2f} ({r['init_firing']:.3f}) "
              f"| {r['cal_energy_mj']:.2f} ({r['cal_firing']:.3f}) | {r['macs'] / 1e9:.3f}G "
              f"| {r['dense_ac'] / 1e9:.2f}G | {implied} | {r['seconds']:.0f} |", flush=True)
    print(f"audit tables: {out}")


if __name__ == "__main__":
    main()
