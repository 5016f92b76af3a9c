"""Energy per image of every ImageNet configuration in the zoo in both conventions, beside the paper's value.

No ImageNet weights or images are available here, so every number is for randomly initialised weights
(seeded) on synthetic N(0,1) 224x224 images whose BatchNorm statistics are first set from the same images
(so neurons see normalised inputs; a fresh model in eval mode is nearly silent). Neither is the trained
model's energy. What carries over from a trained model is the op structure, so the table also gives the
uniform firing rate each convention needs to reach the paper's printed energy:
- ``paper``: (E_paper - 4.6 pJ x FLOPs_enc) / (0.9 pJ x sum_l T_l x FLOPs_l), Eq. 18 solved for one fr;
- ``ops``: (E_paper - 4.6 pJ x MACs) / (0.9 pJ x dense ops of the AC layers), the density of executed work.
Set them against the rates the papers report (MSViT 0.306, QKFormer 0.285).

    python benchmarks/energy_in1k.py [--images 2] [--out DIR] [--models PATTERN]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import zoo
from harness.argtypes import OneLineParser, positive_int, seed_int
from harness.metrics.energy import (E_AC_PJ, E_MAC_PJ, PJ_PER_MJ, EnergyReport, calibrate_batch_norm,
                                    measure_energy, synthetic_images)


def implied_paper_rate(report: EnergyReport, claimed_mj: float) -> float:
    """The one fr that makes Eq. 18 on the measured FLOPs give the paper's energy."""
    spike_flops = sum(r.flops * r.T for r in report.paper_rows if r.input != "image")
    return (claimed_mj * PJ_PER_MJ - E_MAC_PJ * report.first_layer_macs) / (E_AC_PJ * spike_flops)


def implied_ops_density(report: EnergyReport, claimed_mj: float) -> float:
    """The overall density of AC layers that makes the executed op counts give the paper's energy."""
    dense_ac = sum(r.dense for r in report.rows if r.op_class == "AC")
    return (claimed_mj * PJ_PER_MJ - E_MAC_PJ * report.macs) / (E_AC_PJ * dense_ac)


def max_attention_density(report: EnergyReport, model: torch.nn.Module) -> float | None:
    """The highest executed/dense ratio of a functional (attention) matmul on spikes, Linear layers excluded:
    SSA's ``Q (K^T V)`` on integer ``K^T V`` can exceed 1 in ``ops``; ``paper`` caps it at fr x dense."""
    linear = {name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    densities = [r.density for r in report.rows if r.kind == "matmul" and r.op_class == "AC" and r.layer not in linear]
    return max(densities, default=None)


def measure(name: str, images: int, seed: int, out: Path) -> dict:
    """Both conventions for one model on ``images`` synthetic images (batch 1), BatchNorm calibrated on them."""
    torch.manual_seed(seed)
    model = zoo.create_model(name)
    card = model.card
    batches = list(synthetic_images(card.input_shape, images, seed).split(1))
    started = time.perf_counter()
    calibrate_batch_norm(model, batches)
    report = measure_energy(model, batches)
    claimed = card.claimed_energy_mj
    encoding_excess = E_MAC_PJ * (report.encoding_macs_executed() - report.first_layer_macs) / PJ_PER_MJ
    row = {
        "model": name, "params": report.params, "claimed_energy_mj": claimed, "images": report.images,
        "T": report.T, "firing": report.firing_overall,
        "first_layer_macs": report.first_layer_macs, "sops": report.sops, "paper_mj": report.paper_energy_mj,
        "macs": report.macs, "acs": report.acs, "ops_mj": report.energy_mj,
        "encoding_excess_mj": encoding_excess,
        "attention_density": max_attention_density(report, model),
        "implied_paper_fr": None if claimed is None else implied_paper_rate(report, claimed),
        "implied_ops_density": None if claimed is None else implied_ops_density(report, claimed),
        "seconds": time.perf_counter() - started,
    }
    (out / f"{name}.json").write_text(json.dumps({"summary": row, "audit": report.as_dict()}, indent=1))
    return row


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=positive_int, default=2, help="synthetic images (batch 1 each) per model")
    parser.add_argument("--models", default="*.in1k")
    parser.add_argument("--seed", type=seed_int, default=0)
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--out", default=None, help="directory for per-model audit JSON (default: temporary)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out or tempfile.mkdtemp(prefix="energy_in1k_"))
    out.mkdir(parents=True, exist_ok=True)
    print("| model | paper mJ | firing | `paper`: enc. GFLOPs (once) | SOPs G | mJ | fr implied | `ops`: GMACs | "
          "GACs | mJ | density implied | enc. x T excess mJ | max attention density | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in zoo.list_models(args.models):
        r = measure(name, args.images, args.seed, out)
        print(f"| {name} | {_fmt(r['claimed_energy_mj'], '.2f')} | {r['firing']:.3f} "
              f"| {r['first_layer_macs'] / 1e9:.3f} | {r['sops'] / 1e9:.2f} | {r['paper_mj']:.2f} "
              f"| {_fmt(r['implied_paper_fr'], '.3f')} | {r['macs'] / 1e9:.3f} | {r['acs'] / 1e9:.2f} "
              f"| {r['ops_mj']:.2f} | {_fmt(r['implied_ops_density'], '.3f')} | {r['encoding_excess_mj']:.2f} "
              f"| {_fmt(r['attention_density'], '.2f')} | {r['seconds']:.0f} |", flush=True)
    print(f"audit tables: {out}")


if __name__ == "__main__":
    main()
