"""How long SIGTERM of a local launcher takes to end it and all its workers, against SLURM's 30 s before SIGKILL.

    python -m harness bench shutdown_time [--jobs 8] [--reference-code DIR]

Starts ``python -m harness run`` on a suite of ``--jobs`` tiny digits runs (QKFormer, widths 16/32/64) with
``--jobs`` workers, waits until every worker holds its run's lock and has begun its epochs, sends the launcher
SIGTERM and measures the seconds until the launcher has exited and until the last worker process is gone, and
the state each run was left in. With ``--reference-code`` (a checkout of other code, e.g. ``git archive`` of an
earlier commit unpacked there) the same is measured with that code in the same invocation, as the reference.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from harness.argtypes import OneLineParser, positive_int

REPO = Path(__file__).resolve().parent.parent
RUN = ("{model: qkformer_4_384.cifar10, dataset: digits, T: 2, recipe: digits, seed: %d, "
       "overrides: {widths: [16, 32, 64], depths: [1, 1, 1], heads: 2}}")
BUDGET = "{epochs: 200, limit_batches: 2, subset: 64, energy_images: 0}"


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def _training(directory: Path) -> int | None:
    """The pid of the worker that trains a run, once it holds the lock and has begun its epochs."""
    from harness.runs import RunRecord, lock_holder

    if lock_holder(directory) is None or not (directory / "progress.json").exists():
        return None
    return RunRecord(directory).status.get("pid")


def measure(code: Path, jobs: int, workdir: Path) -> dict[str, object]:
    """SIGTERM a launcher running ``jobs`` workers with the code under ``code``; seconds until all are gone."""
    suite = workdir / "shutdown.yaml"
    suite.write_text(f"name: shutdown\nbudget: {BUDGET}\nruns:\n" + "".join(f"  - {RUN % s}\n" for s in range(jobs)))
    results = workdir / "results"
    environment = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen([sys.executable, "-m", "harness", "run", str(suite), "--results-dir", str(results),
                                 "--no-report", "--jobs", str(jobs)], cwd=code, env=environment,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: dict[Path, int] = {}
    while len(workers) < jobs:
        if launcher.poll() is not None:
            raise SystemExit(f"the launcher with {code} ended before {jobs} workers trained")
        for directory in (results / "runs").glob("*"):
            pid = directory not in workers and _training(directory)
            if pid:
                workers[directory] = pid
        time.sleep(0.2)
    started = time.monotonic()
    launcher.send_signal(signal.SIGTERM)
    launcher.wait()
    launcher_s = time.monotonic() - started
    while any(_alive(pid) for pid in workers.values()):
        time.sleep(0.05)
    all_s = time.monotonic() - started
    from harness.runs import RunRecord

    states = Counter(RunRecord(directory).state for directory in workers)
    return {"launcher_exit_s": round(launcher_s, 2), "all_gone_s": round(all_s, 2), "states": dict(states),
            "launcher_code": launcher.returncode}


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=positive_int, default=8)
    parser.add_argument("--reference-code", type=Path, help="another checkout, measured first as the reference")
    args = parser.parse_args(argv)
    codes = ([("reference", args.reference_code.resolve())] if args.reference_code else []) + [("this", REPO)]
    for name, code in codes:
        with tempfile.TemporaryDirectory() as workdir:
            result = measure(code, args.jobs, Path(workdir))
        print(f"{name:9s} --jobs {args.jobs}: SIGTERM -> launcher exited {result['launcher_exit_s']} s, every "
              f"worker gone {result['all_gone_s']} s; exit code {result['launcher_code']}; runs {result['states']}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
