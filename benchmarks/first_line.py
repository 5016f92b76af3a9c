"""Time to `harness run`'s first lines: when each line of output appears, until the first run has started.

    python -m harness bench first_line [--suite suites/smoke.yaml] [--jobs 2] [--code DIR] [--repeats 1]

Each repeat runs ``python -m harness run SUITE --jobs N --no-report`` on a fresh temporary results directory (so a
fresh MLflow store too), prints every line with the seconds since the command started, and stops the command
once a run has started (the workers are stopped with it). ``--code DIR`` times another checkout of spikebench
(e.g. an older commit from ``git archive``) with the same Python.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.argtypes import OneLineParser, positive_int

REPO = Path(__file__).resolve().parent.parent


def time_lines(suite: str, jobs: int, code: Path) -> list[tuple[float, str]]:
    """(seconds since start, line) of stdout and stderr until a line says a run started."""
    with tempfile.TemporaryDirectory() as results:
        command = [sys.executable, "-m", "harness", "run", suite, "--jobs", str(jobs), "--no-report",
                   "--results-dir", results]
        start = time.monotonic()
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_LOGGING_LEVEL"}  # as a user's shell has it
        process = subprocess.Popen(command, cwd=code, env={**env, "PYTHONPATH": str(code)},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        lines = []
        try:
            for line in process.stdout:
                lines.append((time.monotonic() - start, line.rstrip()))
                if line.startswith("started"):
                    break
        finally:  # the workers get SIGTERM when the launcher dies (an older launcher may not stop on SIGTERM)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return lines


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="suites/smoke.yaml")
    parser.add_argument("--jobs", type=positive_int, default=2)
    parser.add_argument("--code", type=Path, default=REPO, help="the spikebench checkout to time (default: this one)")
    parser.add_argument("--repeats", type=positive_int, default=1)
    args = parser.parse_args()
    suite = str(Path(args.suite).resolve())
    for repeat in range(args.repeats):
        print(f"# {args.code.resolve()}, repeat {repeat + 1}, load average {os.getloadavg()[0]:.1f}")
        for seconds, line in time_lines(suite, args.jobs, args.code.resolve()):
            print(f"{seconds:6.2f} s  {line[:110]}")


if __name__ == "__main__":
    main()
