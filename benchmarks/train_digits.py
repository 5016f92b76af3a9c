"""Train tiny configurations of real zoo families on the embedded digits datasets and report test accuracy.

Done-when check of issue 5: >= 90% top-1 on ``digits`` and >= 80% on ``digits_dvs`` (test splits), on CPU.
Each run goes through the real engine (``harness.engine.train``) with the dataset's named recipe.

    .venv/bin/python benchmarks/train_digits.py [--out DIR] [--threads 1]
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
from harness.engine import TrainSpec, train

# (zoo config, dataset, T, model overrides): the families' own blocks, shrunk to digits size
RUNS = [
    ("spikformer_4_384.cifar10", "digits", 4, {"dim": 64, "depth": 1, "heads": 4}),
    ("sdt_2_256.cifar10dvs", "digits_dvs", 8, {"dim": 64, "depth": 1}),
]
TARGET = {"digits": 90.0, "digits_dvs": 80.0}


def main() -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="directory for the run directories (default: a temporary one)")
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--seed", type=seed_int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out or tempfile.mkdtemp(prefix="train_digits_"))
    rows = []
    for name, dataset, T, overrides in RUNS:
        spec = TrainSpec(model=name, dataset=dataset, recipe=dataset, T=T, seed=args.seed, model_kwargs=overrides)
        started = time.perf_counter()
        final = train(spec, out / f"{dataset}-{name}")
        wall = time.perf_counter() - started
        last = final["last"]
        rows.append({"model": name, "overrides": overrides, "dataset": dataset, "T": T, "params": final["params"],
                     "status": final["status"], "final_top1": last["eval_top1"], "best_top1": final["best_top1"],
                     "epochs": final["epochs_completed"], "wall_s": wall, "target": TARGET[dataset],
                     "family": zoo.model_card(name).family})
    print("| model (shrunk to) | dataset | T | params | epochs | final top-1 | best top-1 | target | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        shrink = ", ".join(f"{k}={v}" for k, v in r["overrides"].items())
        print(f"| {r['model']} ({shrink}) | {r['dataset']} | {r['T']} | {r['params']:,} | {r['epochs']} | "
              f"{r['final_top1']:.2f} | {r['best_top1']:.2f} | >= {r['target']:.0f} | {r['wall_s']:.0f} |")
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    print(f"run directories: {out}")
    failed = [r for r in rows if r["final_top1"] < r["target"]]
    if failed:
        raise SystemExit(f"below target: {[(r['model'], r['dataset'], r['final_top1']) for r in failed]}")


if __name__ == "__main__":
    main()
