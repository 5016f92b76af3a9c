"""What a run writes under results/ stays out of `git status`."""

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", ["results/mlflow.db", "results/mlflow.db.lock", "results/runs/x/spec.json",
                                  "results/stale/x/spec.json", "results/tables/report.md"])
def test_run_outputs_are_ignored(path):
    assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0, path
