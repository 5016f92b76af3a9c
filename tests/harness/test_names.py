"""Names that become paths are plain names, and a run's writes stay under the results root, whatever a suite
file or a planted symlink in the results folder says."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from harness.cli import main
from harness.names import UnsafePathError, check_name
from harness.recipe import load_recipe
from harness.runs import prepare
from harness.suite import expand, load_suite

MODEL = "qkformer_2_256.cifar10dvs"
RUN = f"{{model: {MODEL}, dataset: digits_dvs, T: 2, recipe: digits_dvs}}"


def one_error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("name", ["../../escaped", "/etc/cron.d", "a/b", "..", ".", "a\\0b", "a\\\\b", " x", ""],
                         ids=["dotdot", "absolute", "separator", "parent", "current", "nul", "backslash", "space",
                              "empty"])
def test_suite_and_variant_names_that_are_not_plain_names_are_refused(tmp_path, capsys, name):
    results = tmp_path / "results"
    path = tmp_path / "s.yaml"
    path.write_text(f'name: "{name}"\nruns:\n  - {RUN}\n')
    line = one_error(["run", str(path), "--results-dir", str(results), "--no-report"], capsys)
    assert line.startswith(f"error: {path}: line 1: field name: name ")
    assert "expected a plain name" in line
    assert not results.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"], "nothing was written"
    path.write_text(textwrap.dedent(f"""\
        grid:
          - models: [{MODEL}]
            datasets: [digits_dvs]
            recipe: digits_dvs
            variants: {{"{name}": {{}}}}
        """))
    line = one_error(["validate", str(path)], capsys)
    assert line.startswith(f"error: {path}: line 5: field grid.0.variants.") and "expected a plain name" in line


def test_a_suite_named_by_its_file_needs_a_plain_file_name(tmp_path, capsys):
    path = tmp_path / "..yaml"  # the file name gives the suite name "."
    path.write_text(f"runs:\n  - {RUN}\n")
    line = one_error(["validate", str(path)], capsys)
    assert "suite name '.' is a relative directory" in line and "set `name:`" in line


def test_names_from_the_command_line_are_not_paths(tmp_path, capsys):
    script = tmp_path / "evil.py"
    script.write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n")
    relative = os.path.relpath(script.with_suffix(""), Path("benchmarks").resolve())
    assert "unknown benchmark" in one_error(["bench", relative], capsys)
    assert not (tmp_path / "ran").exists()
    with pytest.raises(KeyError, match="unknown recipe"):
        load_recipe("../recipes/digits")


def _spec(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(f"runs:\n  - {RUN}\n")
    return path, expand(load_suite(path))[0]


def test_a_symlinked_run_directory_is_refused_from_the_command_line(tmp_path, capsys):
    path, spec = _spec(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    (results / "runs" / spec.run_id).symlink_to(outside)
    assert main(["run", str(path), "--results-dir", str(results), "--no-report"]) == 2
    err = capsys.readouterr().err
    line, = [line for line in err.splitlines() if line.startswith("error:")]  # MLflow logs its store creation
    assert "Traceback" not in err and f"resolves to {outside}, outside {results}; refusing to write there" in line
    assert list(outside.iterdir()) == []


def test_a_symlink_planted_inside_a_run_directory_is_refused(tmp_path):
    _, spec = _spec(tmp_path)
    results = tmp_path / "results"
    directory = prepare(results, spec)
    outside = tmp_path / "outside"
    outside.mkdir()
    (directory / "checkpoints").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="checkpoints resolves to .*outside"):
        prepare(results, spec)
    (directory / "checkpoints").unlink()
    (directory / "status.json").unlink()
    (directory / "status.json").symlink_to(outside / "status.json")  # dangling, pointing outside
    with pytest.raises(UnsafePathError, match="status.json resolves to .*outside"):
        prepare(results, spec)
    assert list(outside.iterdir()) == []


def test_run_ids_are_plain_names():
    assert check_name("0123abcd", "run id") == "0123abcd"
    with pytest.raises(UnsafePathError, match="run id '../x' contains a path separator"):
        check_name("../x", "run id")
