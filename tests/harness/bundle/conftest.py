"""A tiny suite trained once for real (digits, one epoch of two batches), and its bundle exported by the CLI."""

import textwrap

import pytest

from harness.cli import main

TINY = ("{model: qkformer_4_384.cifar10, dataset: digits, T: 2, recipe: digits, "
        "overrides: {widths: [16, 32, 64], depths: [1, 1, 1], heads: 2}}")


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A finished local run (energy and NeuroBench on 16 images) under ``root``, from the suite file ``suite``."""
    base = tmp_path_factory.mktemp("bundle_site")
    suite = base / "travel.yaml"
    suite.write_text(textwrap.dedent(f"""\
        name: travel
        budget: {{epochs: 1, limit_batches: 2, subset: 64, energy_images: 16}}
        runs:
          - {TINY}
        """))
    root = base / "results"
    assert main(["run", str(suite), "--results-dir", str(root), "--no-report"]) == 0
    (run,) = (root / "runs").iterdir()
    return {"base": base, "suite": suite, "root": root, "run": run}


@pytest.fixture(scope="session")
def bundle(trained):
    """The suite's runs exported with their weights, site ``labA``."""
    out = trained["base"] / "labA.tar.gz"
    assert main(["export", str(trained["suite"]), "--results-dir", str(trained["root"]), "--site", "labA",
                 "--with-weights", "--out", str(out)]) == 0
    return out
