"""Shared fixtures for harness tests: a tiny real suite run once per session through the local launcher."""

import shutil
import textwrap
from pathlib import Path

import pytest

TINY_MODEL = ("{model: qkformer_4_384.cifar10, dataset: digits, T: 2, recipe: digits, "
              "overrides: {widths: [16, 32, 64], depths: [1, 1, 1], heads: 2}}")


def write_suite(directory: Path, name: str, runs: list[str], budget: str = "{epochs: 1, limit_batches: 2, subset: 64}") -> Path:
    path = directory / f"{name}.yaml"
    body = "\n".join(f"  - {run}" for run in runs)
    path.write_text(textwrap.dedent(f"name: {name}\nbudget: {budget}\nruns:\n") + body + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_model_entry() -> str:
    """A suite run entry for a tiny real QKFormer on digits."""
    return TINY_MODEL


@pytest.fixture(scope="session")
def suite_writer():
    """``write_suite(directory, name, runs, budget)`` -> path of a new suite file."""
    return write_suite


@pytest.fixture(scope="session")
def tiny_suite_results(tmp_path_factory):
    """One finished run and one failing run (CIFAR-10 is not under the data root), run for real by ``run_suite``."""
    from harness.launch.local import run_suite
    from harness.suite import expand, load_suite
    from harness.tracking import default_uri

    base = tmp_path_factory.mktemp("tiny_suite")
    failing = TINY_MODEL.replace("dataset: digits", "dataset: cifar10")
    suite_path = write_suite(base, "tiny", [TINY_MODEL, failing])
    specs = expand(load_suite(suite_path))
    root = base / "results"
    empty_data_root = base / "no-datasets-here"
    outcome = run_suite(specs, root, jobs=2, tracking_uri=default_uri(root), suite_path=str(suite_path),
                        data_root=str(empty_data_root))
    return {"root": root, "specs": specs, "outcome": outcome, "suite_path": suite_path}


@pytest.fixture
def tiny_results_copy(tiny_suite_results, tmp_path):
    """A private copy of the tiny suite's results directory, for tests that change it."""
    root = tmp_path / "results"
    shutil.copytree(tiny_suite_results["root"], root)
    return {**tiny_suite_results, "root": root}
