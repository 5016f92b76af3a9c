"""Every command-line mistake is one line on stderr and exit code 2: numeric flags out of range (checked when
the command line is parsed), abbreviated flags, unknown model names (the closest names and `harness ls models`,
never a Python API) and any pydantic ValidationError."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from harness import argtypes, cli
from harness.cli import build_parser, main
from harness.metrics import energy

REPO = Path(__file__).resolve().parents[2]
MODEL = "spikformer_4_384.cifar10"
SUITE = "suites/smoke.yaml"
BUDGET_COMMANDS = ("validate", "run", "status", "submit", "cancel")


def _one_line_exit_2(argv: list[str], capsys) -> str:
    """Run the CLI in this process; the one stderr line of a mistake that exits 2."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, err)
    return err.strip()


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *argv], capture_output=True, text=True, timeout=120)


def _assert_one_line_exit_2(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip()


# ------------------------------------------------------------------------------------ numeric flags, in range

RANGE_CASES = [  # argv, flag, the value as printed, the allowed range
    *[([command, SUITE, "--epochs", "0"], "--epochs", "0", ">= 1") for command in BUDGET_COMMANDS],
    (["run", SUITE, "--epochs", "-1"], "--epochs", "-1", ">= 1"),
    (["run", SUITE, "--jobs", "0"], "--jobs", "0", ">= 1"),
    (["run", SUITE, "--jobs", "-1"], "--jobs", "-1", ">= 1"),
    (["run", SUITE, "-j", "0"], "--jobs", "0", ">= 1"),
    (["run", SUITE, "--retries", "-1"], "--retries", "-1", ">= 0"),
    (["run", SUITE, "--jobs", "two"], "--jobs", "'two'", ">= 1"),
    (["run", SUITE, "--limit-batches", "-5"], "--limit-batches", "-5", ">= 1"),
    (["validate", SUITE, "--subset", "0"], "--subset", "0", ">= 1"),
    (["run", SUITE, "--threads", "0"], "--threads", "0", ">= 1"),
    (["validate", SUITE, "--energy-images", "-3"], "--energy-images", "'-3'", ">= 0"),
    (["validate", SUITE, "--energy-images", "some"], "--energy-images", "'some'", ">= 0"),
    (["audit", MODEL, "--images", "0"], "--images", "0", ">= 1"),
    (["audit", MODEL, "--batch", "1"], "--batch", "1", ">= 2"),
    (["audit", MODEL, "--T", "0"], "--T", "0", ">= 1"),
    (["audit", MODEL, "--seed", "-1"], "--seed", "-1", "from 0 to 4294967295"),
    (["audit", MODEL, "--seed", str(2**32)], "--seed", str(2**32), "from 0 to 4294967295"),
    (["bench", MODEL, "--batch", "0"], "--batch", "0", ">= 1"),
    (["bench", MODEL, "--T", "0"], "--T", "0", ">= 1"),
    (["bench", MODEL, "--size", "-16"], "--size", "-16", ">= 1"),
    (["bench", MODEL, "--warmup", "-1"], "--warmup", "-1", ">= 0"),
    (["bench", MODEL, "--repeats", "0"], "--repeats", "0", ">= 1"),
    (["bench", MODEL, "--threads", "0"], "--threads", "0", ">= 1"),
    (["energy", MODEL, "--images", "0"], "--images", "0", ">= 1"),
    (["energy", MODEL, "--batch-size", "0"], "--batch-size", "0", ">= 1"),
    (["energy", MODEL, "--T", "0"], "--T", "0", ">= 1"),
    (["energy", MODEL, "--seed", "-2"], "--seed", "-2", "from 0 to 4294967295"),
    (["weights", "fetch", MODEL, "--max-bytes", "0"], "--max-bytes", "0", ">= 1"),
    (["import", "bundle.tar.gz", "--max-bytes", "0"], "--max-bytes", "0", ">= 1"),
    (["verify", "bundle.tar.gz", "--images", "0"], "--images", "0", ">= 1"),
    (["verify", "bundle.tar.gz", "--tolerance", "1.5"], "--tolerance", "1.5", "from 0 to 1"),
    (["verify", "bundle.tar.gz", "--tolerance", "nan"], "--tolerance", "nan", "from 0 to 1"),
    (["verify", "bundle.tar.gz", "--tolerance", "some"], "--tolerance", "'some'", "from 0 to 1"),
]


@pytest.mark.parametrize("argv, flag, value, allowed", RANGE_CASES, ids=[" ".join(c[0]) for c in RANGE_CASES])
def test_a_numeric_flag_out_of_range_names_flag_value_and_range(argv, flag, value, allowed, capsys):
    line = _one_line_exit_2(argv, capsys)
    assert line.startswith("error: python -m harness ") and f"argument {flag}" in line, line
    assert line.endswith(f"got {value}") and "expected " in line and allowed in line, line


def test_jobs_0_is_refused_at_once_through_the_real_cli():
    line = _assert_one_line_exit_2(_cli("run", SUITE, "--jobs", "0", "--results-dir", "/nonexistent/never"))
    assert line == "error: python -m harness run: argument --jobs/-j: expected a whole number >= 1, got 0"


def test_epochs_minus_1_is_one_line_not_a_pydantic_traceback_through_the_real_cli():
    line = _assert_one_line_exit_2(_cli("validate", SUITE, "--epochs", "-1"))
    assert "argument --epochs: expected a whole number >= 1, got -1" in line


def _numeric_actions(parser: argparse.ArgumentParser, prog: str = ""):
    """(command, option) of every option of ``parser`` and its subcommands whose type is a bare int or float."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _numeric_actions(sub, f"{prog} {name}")
        elif action.type in (int, float):
            yield prog, action.option_strings


def test_no_flag_of_any_parser_takes_an_unchecked_number():
    parsers = [build_parser(), cli._bench_parser(), energy._parser()]
    unchecked = [found for parser in parsers for found in _numeric_actions(parser)]
    assert unchecked == []


def test_no_benchmark_script_takes_an_unchecked_number_or_an_abbreviation(capsys):
    scripts = sorted((REPO / "benchmarks").glob("*.py"))
    assert scripts
    for path in scripts:
        source = path.read_text()
        assert "type=int" not in source and "type=float" not in source, path
        assert "argparse.ArgumentParser(" not in source, f"{path}: OneLineParser refuses abbreviations"
    line = _one_line_exit_2(["bench", "lif_speed", "--repeats", "0"], capsys)
    assert line == "error: lif_speed.py: argument --repeats: expected a whole number >= 1, got 0"


def test_the_range_types_accept_their_bounds():
    assert argtypes.positive_int("1") == 1 and argtypes.non_negative_int("0") == 0
    assert argtypes.seed_int(str(argtypes.SEED_MAX)) == argtypes.SEED_MAX
    assert argtypes.energy_images("all") == "all" and argtypes.energy_images("0") == 0
    assert argtypes.int_range(2, 4)("4") == 4
    with pytest.raises(argparse.ArgumentTypeError, match="from 2 to 4, got 5"):
        argtypes.int_range(2, 4)("5")


# ------------------------------------------------------------------------------------ abbreviated flags

ABBREVIATIONS = [
    (["run", SUITE, "--job", "2"], "--job 2"),
    (["run", SUITE, "--limit", "2"], "--limit 2"),
    (["validate", SUITE, "--epoch", "1"], "--epoch 1"),
    (["audit", MODEL, "--check", "x.pt"], "--check x.pt"),
    (["bench", MODEL, "--warm", "1"], "--warm 1"),
    (["energy", MODEL, "--image", "2"], "--image 2"),
    (["weights", "fetch", MODEL, "--max", "5"], "--max 5"),
]


@pytest.mark.parametrize("argv, given", ABBREVIATIONS, ids=[" ".join(c[0]) for c in ABBREVIATIONS])
def test_an_abbreviated_flag_is_not_taken_for_the_full_one(argv, given, capsys):
    line = _one_line_exit_2(argv, capsys)
    assert line.endswith(f"unrecognized arguments: {given}"), line


def test_job_2_is_not_jobs_2_through_the_real_cli():
    line = _assert_one_line_exit_2(_cli("run", SUITE, "--job", "2", "--results-dir", "/nonexistent/never"))
    assert line == "error: python -m harness run: unrecognized arguments: --job 2"


def test_a_missing_or_invalid_choice_is_one_line(capsys):
    assert "required: suite" in _one_line_exit_2(["run"], capsys)
    assert "invalid choice: 'fast'" in _one_line_exit_2(["bench", MODEL, "--mode", "fast"], capsys)


# ------------------------------------------------------------------------------------ unknown model names

@pytest.mark.parametrize("argv", [
    ["energy", "spikformer_4_384.cifar1"],
    ["bench", "spikformer_4_384.cifar1"],
    ["audit", "spikformer_4_384.cifar1"],
    ["weights", "fetch", "spikformer_4_384.cifar1"],
])
def test_an_unknown_model_gets_its_closest_names_and_the_ls_command(argv, capsys):
    line = _one_line_exit_2(argv, capsys)
    assert "did you mean spikformer_4_384.cifar10, spikformer_4_384.cifar100" in line, line
    assert "`python -m harness ls models`" in line and "zoo.list_models" not in line
    assert "spikformer_8_768.in1k" not in line, "the closest names only, not all 50"


def test_an_unknown_model_in_a_suite_file_gets_the_closest_names_only(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text("runs:\n  - {model: qkformer_4_384.cifar1, dataset: digits}\n")
    line = _one_line_exit_2(["validate", str(suite)], capsys)
    assert "line 2: field runs.0.model: unknown model 'qkformer_4_384.cifar1'; did you mean" in line
    assert "`python -m harness ls models`" in line and "swformer_8_512.in1k" not in line


def test_energy_notamodel_points_to_ls_models_through_the_real_cli():
    line = _assert_one_line_exit_2(_cli("energy", "notamodel"))
    count = len([name for name in zoo.list_models() if zoo.model_card(name).family != "test"])  # not engine tests'
    assert line == f"error: harness energy: unknown model 'notamodel'; all {count} models: `python -m harness ls models`"


# ------------------------------------------------------------------------------------ pydantic errors

def test_a_validation_error_from_any_command_is_one_line_naming_the_field(monkeypatch, capsys):
    from harness.suite import Budget

    def validate_with_a_bad_budget(args):
        return Budget(epochs=-1, threads=0)

    monkeypatch.setattr(cli, "_cmd_validate", validate_with_a_bad_budget)
    line = _one_line_exit_2(["validate", SUITE], capsys)
    assert line == "error: Budget: field epochs: Input should be greater than or equal to 1 (and 1 more)"


def test_a_validation_error_is_one_line_and_exit_2_in_a_real_process():
    code = ("import sys\nfrom harness import cli\nfrom harness.suite import Budget\n"
            "cli._cmd_validate = lambda args: Budget(subset=0)\nsys.exit(cli.main(['validate', 'suites/smoke.yaml']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = _assert_one_line_exit_2(result)
    assert line == "error: Budget: field subset: Input should be greater than or equal to 1"


def test_other_exceptions_are_not_mistaken_for_user_errors(monkeypatch):
    def broken(args):
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(cli, "_cmd_validate", broken)
    with pytest.raises(RuntimeError, match="a bug of ours"):
        main(["validate", SUITE])
