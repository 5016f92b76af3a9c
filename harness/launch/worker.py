"""Run ONE run to its end in this process: the unit a local subprocess or a SLURM job executes.

    python -m harness.launch.worker RUN_DIR [--data-root DIR] [--threads N]

The run resumes from its last checkpoint when one exists; its state is recorded in ``status.json``.
The worker never talks to MLflow: the launcher (or ``harness collect``) logs the run directory.
"""

from __future__ import annotations

import argparse
import os
import traceback
from pathlib import Path

from harness.runs import DONE_STATES, RunRecord, prepare, tail_lines, write_status
from harness.suite import RunSpec


def train_spec(spec: RunSpec, data_root: str | None = None):
    """The engine's TrainSpec for a run spec (budget knobs map onto both splits)."""
    from harness.engine import TrainSpec

    return TrainSpec(
        model=spec.model, dataset=spec.dataset, recipe=spec.recipe, data_root=data_root, T=spec.T,
        seed=spec.seed, overrides=spec.recipe_overrides, model_kwargs=spec.overrides,
        dataset_options=spec.data_options, epochs=spec.epochs, train_subset=spec.subset,
        eval_subset=spec.subset, limit_train_batches=spec.limit_batches, limit_eval_batches=spec.limit_batches,
        energy_images=spec.energy_images,
    )


def _slurm_job_id() -> str | None:
    """This job's id as submitted: ``ARRAY_TASK`` inside a job array, else the plain job id (None off SLURM)."""
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def execute(spec: RunSpec, results_root: Path, data_root: str | None = None) -> str:
    """Train and evaluate one run (resuming if it was interrupted); returns its final state."""
    directory = prepare(results_root, spec)
    record = RunRecord(directory)
    if record.state in DONE_STATES:
        return record.state
    write_status(directory, "running", slurm_job_id=_slurm_job_id())
    from harness.engine import train

    try:
        result = train(train_spec(spec, data_root), directory)
    except Exception as err:  # recorded with its reason; the launcher reports it and goes on
        reason = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=8)}"
        write_status(directory, "failed", reason=reason + tail_lines(directory / "train.log"))
        return "failed"
    state = "diverged" if result.get("status") == "diverged" else "finished"
    write_status(directory, state, reason=result.get("message") if state == "diverged" else None)
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    spec = RunRecord(args.run_dir).spec
    state = execute(spec, args.run_dir.resolve().parent.parent, args.data_root)
    return 0 if state in DONE_STATES else 1


if __name__ == "__main__":
    raise SystemExit(main())
