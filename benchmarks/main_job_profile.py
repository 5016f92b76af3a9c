"""Where each run of a finished suite spent its time, read from its run directory after the fact.

    python -m harness bench main_job_profile RESULTS_DIR

Per run, from the files the worker writes in order (modification times): ``run.lock`` (the worker has started and
holds the run), ``config.json`` (torch, the engine and the trainer imported, model and data built), the epochs
(``epoch_time_s`` in ``metrics.jsonl``: training steps; the rest of ``final.json``'s ``wall_time_s``: the
per-epoch evaluation and checkpoint), then ``final.json`` (the measurement pass: energy, firing rates,
NeuroBench). The worker's own interpreter start and first imports (before the lock) are not in these files.
Times are wall seconds: on a shared machine they are inflated, their shares less so.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.argtypes import OneLineParser

PHASES = ("start_and_build", "train_steps", "eval_and_checkpoints", "measurement")


def run_phases(run_dir: Path) -> dict[str, float] | None:
    """The wall seconds of each phase of one finished run (None when it did not finish)."""
    final_path = run_dir / "final.json"
    if not final_path.is_file():
        return None
    final = json.loads(final_path.read_text())
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = sum(epoch.get("epoch_time_s", 0.0) for epoch in epochs)
    mtime = {name: (run_dir / name).stat().st_mtime for name in ("run.lock", "config.json", "final.json")}
    built = mtime["config.json"] - mtime["run.lock"]
    return {"start_and_build": built, "train_steps": steps,
            "eval_and_checkpoints": final["wall_time_s"] - steps,
            "measurement": mtime["final.json"] - mtime["config.json"] - final["wall_time_s"]}


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path)
    args = parser.parse_args()
    totals = dict.fromkeys(PHASES, 0.0)
    print("| run | model | dataset | " + " | ".join(PHASES) + " |\n|" + "---|" * (3 + len(PHASES)))
    for run_dir in sorted((args.results_dir / "runs").iterdir()):
        phases = run_phases(run_dir)
        if phases is None:
            continue
        spec = json.loads((run_dir / "spec.json").read_text())
        print(f"| {run_dir.name} | {spec['model']} | {spec['dataset']} | "
              + " | ".join(f"{phases[p]:.1f}" for p in PHASES) + " |")
        for phase in PHASES:
            totals[phase] += phases[phase]
    whole = sum(totals.values()) or 1.0
    print("| all | | | " + " | ".join(f"{totals[p]:.1f} ({100 * totals[p] / whole:.0f} %)" for p in PHASES) + " |")


if __name__ == "__main__":
    main()
