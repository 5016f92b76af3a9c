"""The command line answers --help without heavy imports and reports user mistakes in one line."""

import subprocess
import sys

import pytest

from harness.cli import main


def test_help_imports_no_torch_or_mlflow():
    code = ("import sys\nfrom harness.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'mlflow', 'timm', 'pandas') if m in sys.modules]\n"
            "print('HEAVY=' + ','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "usage: python -m harness" in out
    assert out.strip().endswith("HEAVY=")


def test_unknown_benchmark_is_a_one_line_user_error(capsys):
    assert main(["bench", "no_such_benchmark"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown benchmark 'no_such_benchmark'") and "lif_speed" in err
    assert "Traceback" not in err


def test_every_command_has_help():
    for command in ("ls", "validate", "run", "status", "collect", "report", "leaderboard", "submit", "cancel",
                    "bench"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0


def test_energy_forwards_every_argument_to_its_own_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["energy", "--help"])
    assert exit_info.value.code == 0
    assert "--calibrate-bn" in capsys.readouterr().out
