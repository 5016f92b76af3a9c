"""Through the real command line: ``run`` ends with the summary of its own runs (failed ones with their reason),
``report`` prints the tables with runs, ``report --all`` every paper table."""

import subprocess
import sys


def _harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=600)


def test_run_ends_with_the_summary_of_its_own_runs(tiny_results_copy, tmp_path):
    root, suite = tiny_results_copy["root"], tiny_results_copy["suite_path"]
    good, bad = tiny_results_copy["specs"]
    done = _harness("run", str(suite), "--results-dir", str(root), "--data-root", str(tmp_path / "empty"))
    lines = done.stdout.splitlines()
    assert done.returncode == 1 and len(lines) < 40, done.stdout + done.stderr  # the CIFAR-10 run fails again
    start = next(i for i, line in enumerate(lines) if line.startswith("tiny: 2 runs in 2 configurations"))
    summary = lines[start:]
    assert summary[1].split()[:4] == ["model", "data", "T", "params"]
    failed = next(line for line in summary if " cifar10 " in line)
    assert "1 failed: " in failed and "cifar" in failed.split("1 failed: ")[1] and "k " in failed  # reason, params
    trained = next(line for line in summary if " digits " in line)
    assert "no claim: model changed by overrides" in trained
    assert summary[-2].startswith(f"full report: {root / 'tables' / 'tiny' / 'report.md'}")
    assert summary[-1] == f"page: {root / 'leaderboard' / 'index.html'}"
    assert "## Table 1" not in done.stdout and "not run yet" not in done.stdout


def test_report_prints_the_tables_with_runs_and_all_of_them_on_request(tiny_results_copy):
    root, suite = tiny_results_copy["root"], tiny_results_copy["suite_path"]
    short = _harness("report", str(suite), "--results-dir", str(root))
    assert short.returncode == 0, short.stderr
    assert "rows not run; see `python -m harness report <suite file> --all`" in short.stdout
    assert "## Table 1" not in short.stdout and "## Runs outside the paper's tables" in short.stdout
    every = _harness("report", str(suite), "--results-dir", str(root), "--all")
    assert every.returncode == 0 and "## Table 1: ImageNet-1K" in every.stdout and "rows not run" not in every.stdout
