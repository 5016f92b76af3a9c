"""The product cites only what its users have: no reference to the project's private notes (``shared/``, the
zoo spec files) in code, recipes, suites, claims, README or benchmark results."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PRODUCT = ("harness", "zoo", "suites", "results", "benchmarks", "scripts", "slurm", "README.md", "pyproject.toml")
PRIVATE = ("shared/", "zoo-spec", "paper-claims.yaml", "ENVIRONMENT.md")
TEXT = {".py", ".yaml", ".yml", ".md", ".toml", ".j2", ".js", ".css", ".sh", ".txt", ".json"}


def _product_files():
    for name in PRODUCT:
        path = ROOT / name
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from (p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix in TEXT
                        and "__pycache__" not in p.parts)


@pytest.mark.parametrize("marker", PRIVATE)
def test_no_product_file_cites_the_private_notes(marker):
    citing = [f"{p.relative_to(ROOT)}:{n}" for p in _product_files()
              for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if marker in line]
    assert citing == []
