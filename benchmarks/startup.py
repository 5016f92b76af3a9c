"""Start-up costs: wall and CPU time of the quick commands, the run-ordering cost estimate and a digits worker's
imports, each in a fresh interpreter.

    python -m harness bench startup [--repeats 5] [--code DIR] [--only NAME ...]

Each command runs once untimed (it fills the page cache and spikebench's user cache, e.g. timm's model names),
then ``--repeats`` times; the table gives the median wall and CPU (user + sys) seconds. ``--code DIR`` times
another checkout of spikebench (e.g. an older commit from ``git archive``) with the same Python. Heading the
table: the CPU model, its bf16 flags and the load average, since a shared machine inflates every time.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.argtypes import OneLineParser, positive_int

REPO = Path(__file__).resolve().parent.parent
EXPAND_TABLE4 = "from harness.suite import expand, load_suite\nspecs = expand(load_suite('suites/table4.yaml'))\n"
COMMANDS = {
    "help": ["-m", "harness", "--help"],
    "validate_table4": ["-m", "harness", "validate", "suites/table4.yaml"],
    "expand_table4": ["-c", EXPAND_TABLE4],
    "expand_and_estimate_table4": ["-c", EXPAND_TABLE4 + "from harness.launch.cost import expected_costs\n"
                                   "expected_costs(specs)"],
    "digits_worker_imports": ["-c", "import harness.launch.worker\nfrom harness.engine import trainer\n"
                              "from harness.data import build_dataset\nfrom harness.recipe import load_recipe\n"
                              "build_dataset('digits', 'train', recipe=load_recipe('digits').data)"],
}


def cpu_line() -> str:
    """The CPU model and whether it has native bf16 (avx512_bf16, amx_bf16)."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    flags = Path("/proc/cpuinfo").read_text().split()
    present = [flag for flag in ("avx512_bf16", "amx_bf16") if flag in flags] or ["no avx512_bf16/amx_bf16"]
    return f"{model}, {os.cpu_count()} CPUs, {', '.join(present)}"


def timed(arguments: list[str], code: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of one run of ``python ARGUMENTS`` in ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run([sys.executable, *arguments], cwd=code, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--code", type=Path, default=REPO, help="the spikebench checkout to time (default: this one)")
    parser.add_argument("--only", nargs="+", choices=sorted(COMMANDS), help="time only these commands")
    args = parser.parse_args()
    code = args.code.resolve()
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "PYTHONPATH": str(code), "SPIKEBENCH_CACHE": cache, "OMP_NUM_THREADS": "1"}
        print(f"# {code}: {cpu_line()}; load average {os.getloadavg()[0]:.1f} at the start")
        print("| command | median wall s | median CPU s | runs |\n|---|---|---|---|")
        for name in args.only or COMMANDS:
            timed(COMMANDS[name], code, env)  # untimed: page cache, user cache
            runs = [timed(COMMANDS[name], code, env) for _ in range(args.repeats)]
            wall, cpu = (statistics.median(values) for values in zip(*runs))
            print(f"| {name} | {wall:.2f} | {cpu:.2f} | {args.repeats} |", flush=True)
        print(f"# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
