"""Hostile suite files through the command line: one line naming the file, exit code 2, no traceback, no hang."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.configfile import MAX_FILE_BYTES

MODEL = "qkformer_2_256.cifar10dvs"
LAUGHS = "\n".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 10))


def validate(path: Path, capsys, named: Path | None = None) -> str:
    """The one error line ``validate`` prints for ``path`` (checked: exit code 2, a single line naming the file
    ``named``, by default ``path``, no traceback)."""
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {named or path}"), err
    return lines[0]


def test_alias_bomb_nested_in_recipe_overrides_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(textwrap.dedent(f"""\
        grid:
          - models: [{MODEL}]
            datasets: [digits_dvs]
            recipe: digits_dvs
            recipe_overrides:
              l0: &l0 [lol]
        """) + textwrap.indent(LAUGHS, "      ") + "\n")
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "harness", "validate", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert time.monotonic() - start < 60
    assert run.returncode == 2 and "Traceback" not in run.stderr
    line, = run.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}: line 11: field grid.0.recipe_overrides.l5: aliases expand to ")
    assert "alias bomb" in line


def test_recursive_alias_is_refused(tmp_path, capsys):
    path = tmp_path / "loop.yaml"
    path.write_text(f"runs:\n  - &run {{model: {MODEL}, dataset: digits_dvs, overrides: {{x: *run}}}}\n")
    assert "an alias refers to a node that contains it" in validate(path, capsys)


def test_aliases_within_the_bound_still_work(tmp_path, capsys):
    path = tmp_path / "reuse.yaml"
    path.write_text(textwrap.dedent(f"""\
        grid:
          - models: [{MODEL}]
            datasets: [digits_dvs]
            recipe: digits_dvs
            overrides: &small {{official_quirks: false}}
          - models: [{MODEL}]
            datasets: [digits]
            recipe: digits
            overrides: *small
        """))
    assert main(["validate", str(path)]) == 0
    assert "valid, 2 runs" in capsys.readouterr().out


@pytest.mark.parametrize("content, problem", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not a text file: byte 0 is not UTF-8"),
    (b"name: ok\nruns: \x07\x00\n", "line 2: not valid YAML: unacceptable character '\\x07'"),
    (b"runs: [" * 20000, "not valid YAML"),
    (b"runs:\n  - {model: [\n", "line 3: not valid YAML"),
    (b"a: 1\n---\nb: 2\n", "line 2: not valid YAML: expected a single document in the stream; but found another"),
    (b"runs: !!python/object/apply:os.system [touch pwned]\n", "line 1: not valid YAML: could not determine a constructor"),
], ids=["binary", "control-characters", "deep-nesting", "unclosed", "two-documents", "python-tag"])
def test_malformed_files_are_one_line_errors(tmp_path, capsys, content, problem):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    assert problem in validate(path, capsys)


def test_oversized_file_is_refused_without_parsing(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    path.write_text("description: " + "x" * MAX_FILE_BYTES + "\n")
    assert f"suite file is larger than {MAX_FILE_BYTES // 1024} KiB" in validate(path, capsys)


def test_unreadable_includes_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    path = tmp_path / "s.yaml"
    path.write_text("include: [binary.yaml]\n")
    assert "not a text file" in validate(path, capsys, named=tmp_path / "binary.yaml")
    path.write_text("include: [.]\n")
    assert "suite file not found" in validate(path, capsys, named=tmp_path)


# ----------------------------------------------------------------------------- files a suite must not read or echo
SECRET = "s3cr3t-7f1c"
PASSWD_LIKE = f"root:x:0:0:{SECRET}:/root:/bin/bash\ndaemon:{SECRET}:1:1::/usr/sbin:/usr/sbin/nologin\n"


def validate_cli(path: Path) -> str:
    """The one error line of ``python -m harness validate path`` in a subprocess (checked: exit code 2, one line,
    no traceback, the secret of the files around it absent from everything printed)."""
    run = subprocess.run([sys.executable, "-m", "harness", "validate", str(path)], capture_output=True, text=True,
                         timeout=120)
    printed = run.stdout + run.stderr
    assert run.returncode == 2 and "Traceback" not in printed, printed
    assert SECRET not in printed, printed
    line, = run.stderr.strip().splitlines()
    return line


@pytest.fixture
def outside(tmp_path) -> Path:
    """A password-like file beside (not inside) the directory the suites live in."""
    path = tmp_path / "shadow"
    path.write_text(PASSWD_LIKE)
    (tmp_path / "suites").mkdir()
    return path


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_an_include_outside_the_suites_tree_is_refused_without_echo(outside, how):
    suites = outside.parent / "suites"
    named = {"dotdot": "../shadow", "absolute": str(outside), "symlink": "notes.yaml"}[how]
    if how == "symlink":
        (suites / "notes.yaml").symlink_to(outside)
    path = suites / "s.yaml"
    path.write_text(f"description: probe\ninclude: [{named}]\n")
    line = validate_cli(path)
    assert line.startswith(f"error: {path}: line 2: field include.0: ")
    assert f"resolves to {outside}" in line and "must stay inside the suite's own directory tree" in line


def test_a_nested_include_may_not_leave_the_top_suites_tree(outside):
    suites = outside.parent / "suites"
    (suites / "parts").mkdir()
    (suites / "parts" / "base.yaml").write_text("include: [../../shadow]\n")
    path = suites / "s.yaml"
    path.write_text("include: [parts/base.yaml]\n")
    line = validate_cli(path)
    assert line.startswith(f"error: {suites / 'parts' / 'base.yaml'}: line 1: field include.0: ")


def test_includes_inside_the_tree_and_from_the_package_suites_are_read(tmp_path):
    from harness.suite import PACKAGE_SUITES, load_suite

    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "base.yaml").write_text(f"runs:\n  - {{model: {MODEL}, dataset: digits_dvs}}\n")
    path = tmp_path / "s.yaml"
    path.write_text(f"include: [parts/base.yaml, {PACKAGE_SUITES / 'smoke.yaml'}]\n")
    suite = load_suite(path)
    smoke = load_suite(PACKAGE_SUITES / "smoke.yaml")
    assert [entry.model for entry, _ in suite.runs] == [MODEL] + [entry.model for entry, _ in smoke.runs]
    assert suite.grid == smoke.grid


@pytest.mark.parametrize("content", [
    b"\xff\xfe" + SECRET.encode() + b"\x00\x01",
    PASSWD_LIKE.encode(),
    f"!{SECRET} x\n".encode(),
    f"a: *{SECRET}\n".encode(),
    f"a: &{SECRET} 1\nb: &{SECRET} 2\n".encode(),
    (PASSWD_LIKE * (10 * MAX_FILE_BYTES // len(PASSWD_LIKE))).encode(),
], ids=["binary", "passwd-scalar", "tag", "alias", "anchor", "10MB"])
def test_no_error_echoes_a_file_that_is_not_yaml(tmp_path, content):
    path = tmp_path / "notes.yaml"
    path.write_bytes(content)
    assert validate_cli(path).startswith(f"error: {path}: ")
