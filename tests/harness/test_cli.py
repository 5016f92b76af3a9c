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


GRID = """\
grid:
  - models: [qkformer_2_256.cifar10dvs]
    datasets: [{dataset}]
    recipe: {recipe}
    {field}:
      {key}: {value}
"""


@pytest.mark.parametrize("field, key, value, dataset, expected", [
    ("overrides", "widths", "abc", "digits_dvs",
     "field grid.0.overrides.widths: override 'widths' of qkformer_2_256.cifar10dvs: expected Sequence[int], got 'abc'"),
    ("overrides", "heads", '"8"', "digits_dvs", "field grid.0.overrides.heads: override 'heads' of "
     "qkformer_2_256.cifar10dvs: expected int, got '8'"),
    ("overrides", "official_quirks", "1", "digits_dvs", "override 'official_quirks' of qkformer_2_256.cifar10dvs: "
     "expected bool, got 1"),
    ("overrides", "mlp_ratio", "4e0", "digits_dvs", "override 'mlp_ratio' of qkformer_2_256.cifar10dvs: "
     "expected float, got '4e0'; YAML reads 1e-3 as text, write 1.0e-3"),
    ("overrides", "T", "4", "digits_dvs", "field grid.0.overrides.T: T is not a model override; set it with the "
     "run's T field"),
    ("recipe_overrides", "optim.lrr", "0.1", "digits_dvs", "field grid.0.recipe_overrides.optim.lrr: recipe "
     "'digits_dvs': expected 'data.<field>', 'optim.<field>' or 'train.<field>' naming a recipe field; did you "
     "mean optim.lr"),
    ("recipe_overrides", "optim.lr", "fast", "digits_dvs", "field grid.0.recipe_overrides.optim.lr: recipe "
     "'digits_dvs': Input should be a valid number, unable to parse string as a number (expected float)"),
    ("recipe_overrides", "data.interpolation", "cubic", "digits_dvs", "recipe_overrides.data.interpolation: "
     "recipe 'digits_dvs': Input should be 'bilinear', 'bicubic' or 'nearest'"),
    ("data_options", "sise", "16", "digits_dvs", "field grid.0.data_options.sise: unknown data option 'sise' for "
     "dataset 'digits_dvs'; valid data options: noise_rate_hz, seed, size"),
    ("data_options", "size", "[16]", "digits_dvs", "field grid.0.data_options.size: data option 'size' of "
     "digits_dvs: expected int | None, got [16]"),
    ("data_options", "layout", "tonik", "dvs128", "data option 'layout' of dvs128: expected "
     "Literal['spikingjelly', 'tonic'], got 'tonik'"),
    ("data_options", "size", "8", "cifar10", "unknown data option 'size' for dataset 'cifar10'; valid data "
     "options: none"),
], ids=["int-list-gets-str", "int-gets-str", "bool-gets-int", "float-gets-text", "T", "recipe-typo", "recipe-type", "recipe-literal",
        "option-typo", "option-type", "option-value", "no-options"])
def test_validate_checks_overrides_recipe_overrides_and_data_options(tmp_path, capsys, field, key, value, dataset,
                                                                      expected):
    """What used to fail only once a run started fails at validate: one line with file, line, field, expectation."""
    path = tmp_path / "s.yaml"
    recipe = "digits_dvs" if dataset == "digits_dvs" else "qkformer_dvs128" if dataset == "dvs128" else "digits"
    path.write_text(GRID.format(dataset=dataset, recipe=recipe, field=field, key=key, value=value))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    line, = err.strip().splitlines()
    assert line.startswith(f"error: {path}: line 6: ") and expected in line, line


def test_validate_accepts_well_typed_overrides(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(GRID.format(dataset="digits_dvs", recipe="digits_dvs", field="overrides", key="widths",
                                value="[16, 32, 64]")
                    + "    recipe_overrides: {optim.lr: 1.0e-3, train.batch_size: 8}\n"
                    + "    data_options: {size: 16, noise_rate_hz: 1}\n")
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
