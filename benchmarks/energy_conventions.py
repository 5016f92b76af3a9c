"""The four energy conventions side by side for CIFAR models, with the time each takes and the break-even rate.

``paper`` and ``ops`` come from one pass of the dispatcher counter (``measure_energy``); ``memory`` and ``lemaire``
from spikingjelly's own estimators on the spikingjelly-neuron copy (``measure_memory_energy``), each timed on its
own. Random weights (seeded) on synthetic N(0,1) images at batch 1, BatchNorm statistics first set from the same
images (a fresh model in eval mode is nearly silent): the mJ figures are no measure of the trained models.

    python benchmarks/energy_conventions.py [--models spikformer_4_384.cifar10 sdt_2_512.cifar10] [--images 2]
"""

from __future__ import annotations

import platform
import time

import torch

import zoo
from harness.argtypes import OneLineParser, positive_int, seed_int
from harness.metrics.break_even import break_even
from harness.metrics.energy import calibrate_batch_norm, measure_energy, synthetic_images
from harness.metrics.memory_energy import MEMORY_CONVENTIONS, measure_memory_energy
from harness.metrics.perf import machine_description


def measure(name: str, images: int, seed: int) -> dict:
    """Energy per image (mJ) and seconds per convention, the firing rate and the break-even rate of one model."""
    torch.manual_seed(seed)
    model = zoo.create_model(name)
    batches = list(synthetic_images(model.card.input_shape, images, seed).split(1))
    calibrate_batch_norm(model, batches)
    started = time.perf_counter()
    report = measure_energy(model, batches)
    row = {"model": name, "T": model.T, "firing_rate": report.firing_overall,
           "paper_mj": report.paper_energy_mj, "ops_mj": report.energy_mj,
           "paper_ops_s": time.perf_counter() - started}
    for convention in MEMORY_CONVENTIONS:
        started = time.perf_counter()
        result = measure_memory_energy(model, batches, convention)
        row[f"{convention}_mj"] = result.energy_mj
        row[f"{convention}_s"] = time.perf_counter() - started
        row[f"{convention}_model_id"] = result.model_id
        row[f"{convention}_memory_share"] = result.breakdown_pj["memory_pj"] / result.energy_pj
    even = break_even(report.paper_rows, model.T)
    row["break_even"], row["measured_rate"] = even.break_even_firing_rate, even.measured_firing_rate
    return row


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["spikformer_4_384.cifar10", "sdt_2_512.cifar10"])
    parser.add_argument("--images", type=positive_int, default=2)
    parser.add_argument("--seed", type=seed_int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {machine_description(torch.device('cpu'))}; python {platform.python_version()}")
    print("| model | T | fr | paper mJ | ops mJ | memory mJ (traffic) | lemaire mJ (traffic) | paper+ops s | memory s "
          "| lemaire s | FLOP-weighted fr | break-even fr |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        r = measure(name, args.images, args.seed)
        spikingjelly = " | ".join(f"{r[c + '_mj']:.2f} ({r[c + '_memory_share']:.1%})" for c in MEMORY_CONVENTIONS)
        print(f"| {name} | {r['T']} | {r['firing_rate']:.4f} | {r['paper_mj']:.4f} | {r['ops_mj']:.4f} | "
              f"{spikingjelly} | {r['paper_ops_s']:.1f} | {r['memory_s']:.1f} | {r['lemaire_s']:.1f} | "
              f"{r['measured_rate']:.4f} | {r['break_even']:.4f} |", flush=True)
    print(f"model ids: memory {r['memory_model_id']}, lemaire {r['lemaire_model_id']}")


if __name__ == "__main__":
    main()
