"""The command line answers --help without heavy imports and reports user mistakes in one line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main


def test_unknown_benchmark_is_a_one_line_user_error(capsys):
    assert main(["bench", "no_such_benchmark"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown benchmark 'no_such_benchmark'") and "lif_speed" in err
    assert "Traceback" not in err


def test_every_command_has_help():
    for command in ("ls", "validate", "run", "status", "collect", "report", "leaderboard", "submit", "cancel",
                    "bench", "audit"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0


def test_energy_forwards_every_argument_to_its_own_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["energy", "--help"])
    assert exit_info.value.code == 0
    assert "--calibrate-bn" in capsys.readouterr().out


def test_audit_compares_batch_1_and_32_on_seeded_images_and_prints_json_last(capsys):
    args = ["audit", "msvit_4_384.cifar10", "--dataset", "digits", "--images", "40", "--T", "2", "--json",
            "--set", "widths=[16, 16, 32]", "--set", "depths=[1, 1, 1]", "--set", "heads=2"]
    assert main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    report = json.loads(out[-1])
    assert report["model"] == "msvit_4_384.cifar10" and report["images"] == 40 and report["batches"] == [1, 32]
    assert report["batch_dependent"] is True and report["inputs"].startswith("digits/test")
    assert {"top1_batch1", "top1_batch32", "top1_diff", "max_logit_diff", "mean_logit_diff"} <= set(report)
    assert main(args + ["--set", "official_quirks=false"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["batch_dependent"] is False


def test_audit_takes_a_neuron_swap(capsys):
    args = ["audit", "sdt_2_512.cifar10", "--random", "--images", "2", "--batch", "2", "--T", "2", "--json",
            "--set", "dim=32", "--set", "depth=1", "--set", "neuron={type: if, v_threshold: 0.75}"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["images"] == 2


def test_audit_on_random_inputs_reports_logit_differences_without_top1(capsys):
    args = ["audit", "sdt_2_512.cifar10", "--random", "--images", "4", "--batch", "2", "--T", "1", "--json",
            "--set", "dim=32", "--set", "depth=1"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["inputs"] == "random N(0,1) images" and report["batches"] == [1, 2] and report["images"] == 4
    assert "top1_diff" not in report and report["batch_dependent"] is False


@pytest.mark.parametrize("args,message", [
    (["audit", "msvit_4_384.cifar1"], "unknown model 'msvit_4_384.cifar1'"),
    (["audit", "msvit_4_384.cifar10", "--set", "width"], "--set 'width': expected KEY=VALUE"),
    (["audit", "msvit_4_384.cifar10", "--set", "width=3"], "--set: width not arguments of msvit_4_384.cifar10"),
    (["audit", "spikingresformer_tistar.cifar10", "--set", "neuron=ternary"],
     "--set: spikingresformer_tistar.cifar10: override 'neuron': 'ternary' is forbidden by its model card"),
    (["bench", "sdt_2_512.cifar10", "--set", "surrogate=relu"],
     "--set: sdt_2_512.cifar10: override 'surrogate': unknown surrogate 'relu'"),
])
def test_audit_mistakes_are_one_line_user_errors(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


def test_quirks_suite_validates_with_every_family_official_and_paper(capsys):
    from harness.suite import expand, load_suite

    suite = str(Path(__file__).resolve().parents[2] / "suites" / "quirks.yaml")
    assert main(["validate", suite]) == 0
    assert "valid, 40 runs" in capsys.readouterr().out
    specs = expand(load_suite(suite))
    pairs = {(s.model.split("_")[0], s.dataset, s.variant, s.overrides["official_quirks"]) for s in specs}
    families = {"msvit", "qkformer", "spikformer", "sdt", "sdtv2"}
    assert pairs == {(f, d, v, v == "official") for f in families for d in ("digits", "digits_dvs")
                     for v in ("official", "paper")}


def test_ls_gives_derived_counts_and_the_input_each_recipe_feeds(capsys):
    assert main(["ls", "models", "--pattern", "msvit_2_256*"]) == 0
    out = capsys.readouterr().out
    assert "params=1,674,762 (derived)" in out and "params=1,675,019 (derived)" in out and "?" not in out
    assert main(["ls", "datasets"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "input=(3, 16, 16) [digits]" in lines["digits"]  # stored at 32x32, fed at the recipe's 16x16
    assert "(3, 128, 128) [msvit_cifar10dvs]" in lines["cifar10dvs"] and "(2, 64, 64) [sdt_cifar10dvs" in lines[
        "cifar10dvs"]
    assert "(3, 224, 224) [msvit_in1k," in lines["imagenet"]


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
     "'digits_dvs': expected 'data.<field>', 'optim.<field>', 'train.<field>' or 'distill.<field>' naming a "
     "recipe field; did you mean optim.lr"),
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


def test_a_reader_that_closes_early_is_not_an_error():
    """`validate suites/table4.yaml | head -1`: no BrokenPipeError traceback, exit 0 (here the reader is gone
    before the first write, so the write fails for certain)."""
    import os

    root = Path(__file__).resolve().parents[2]
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "harness", "validate", "suites/table4.yaml"], cwd=root,
                              stdout=write_end, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 0 and proc.stderr == b""


KD_SUITE = """\
grid:
  - models: [{model}]
    datasets: [imagenet]
    recipe: sdtv3_in1k_kd
{overrides}"""


@pytest.mark.parametrize("model, overrides, fix", [
    ("sdtv3_83m.in1k", "    overrides: {kd: false}\n", "overrides: {kd: true}"),
    ("sdtv3_5m.in1k", "", "a model with a kd argument"),
], ids=["kd-switched-off", "no-kd-argument"])
def test_validate_refuses_distilling_into_a_model_without_a_kd_head(tmp_path, capsys, model, overrides, fix):
    path = tmp_path / "kd.yaml"
    path.write_text(KD_SUITE.format(model=model, overrides=overrides))
    assert main(["validate", str(path)]) == 2
    line, = capsys.readouterr().err.strip().splitlines()
    assert line == (f"error: {path}: line 2: field grid.0.models.0: recipe 'sdtv3_in1k_kd' distils (distill.type "
                    f"'hard') but {model} has no distillation head; expected a kd model ({fix})")


@pytest.mark.parametrize("teacher, expected", [
    ("timm:caformer_b63", "expected a model of the installed timm"),
    ("zoo:sdtv3_5m.in1kk", "expected a registered zoo model; did you mean sdtv3_5m.in1k,"),
], ids=["timm", "zoo"])
def test_validate_names_an_unknown_teacher(tmp_path, capsys, teacher, expected):
    path = tmp_path / "kd.yaml"
    path.write_text(KD_SUITE.format(model="sdtv3_83m.in1k", overrides="")
                    + f"    recipe_overrides: {{distill.teacher: '{teacher}'}}\n")
    assert main(["validate", str(path)]) == 2
    line, = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {path}: line 5: field grid.0.recipe_overrides.distill.teacher: recipe "
                           f"'sdtv3_in1k_kd': distill.teacher '{teacher}': ") and expected in line, line


def _run_ids(capsys, argv: list[str]) -> list[str]:
    assert main(argv) == 0
    return [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]


def test_energy_images_flag_overrides_the_suites_value_only_when_given(tmp_path, capsys):
    from harness.suite import expand, load_suite

    suite = tmp_path / "s.yaml"
    suite.write_text("budget: {energy_images: 0}\nruns:\n"
                     "  - {model: qkformer_2_256.cifar10dvs, dataset: digits_dvs, T: 2, recipe: digits_dvs}\n")
    (own,) = expand(load_suite(suite))
    assert _run_ids(capsys, ["validate", str(suite)]) == [own.run_id]
    flagged = _run_ids(capsys, ["validate", str(suite), "--energy-images", "all"])
    assert flagged != [own.run_id] and flagged == _run_ids(capsys, ["validate", str(suite), "--energy-images", "all"])
