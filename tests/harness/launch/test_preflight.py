"""`validate --data-root` lists every dataset and file the runs need that is not under the data root (exit 2);
`run` refuses a missing distillation teacher before any run starts; without a data root validate checks the
suite alone."""

import re

import pytest

from harness.cli import main
from harness.data import DatasetError, build_dataset, check_dataset
from harness.data.catalog import CIFAR_URL, IMAGENET_URL
from harness.launch.preflight import RUN_IDS_SHOWN, missing_datasets
from harness.suite import expand, load_suite

CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta")
TEACHER = "teachers/caformer_b36.sail_in22k_ft_in1k.safetensors"
SUITE = """\
name: needs
budget: {epochs: 1, limit_batches: 1, subset: 16}
seeds: [0, 1]
grid:
  - models: [qkformer_4_384.cifar10]
    datasets: [cifar10, digits]
  - models: [sdtv3_83m.in1k]
    datasets: [imagenet]
    recipe: sdtv3_in1k_kd
"""


@pytest.fixture
def suite(tmp_path):
    path = tmp_path / "needs.yaml"
    path.write_text(SUITE)
    return path


def _validate(capsys, suite, *flags) -> tuple[int, list[str], list[str]]:
    code = main(["validate", str(suite), *flags])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.strip().splitlines()


def _missing_lines(out: list[str]) -> list[str]:
    return out[out.index(next(line for line in out if line.startswith("missing under"))) + 1:]


def _run_ids(suite, dataset: str) -> list[str]:
    return [spec.run_id for spec in expand(load_suite(suite)) if spec.dataset == dataset]


def test_validate_lists_each_missing_dataset_and_teacher_with_its_runs_and_source(tmp_path, suite, capsys):
    root = tmp_path / "data"
    code, out, err = _validate(capsys, suite, "--data-root", str(root))
    assert code == 2
    assert err == [f"error: {suite}: 3 dataset(s) or file(s) missing under {root} (listed above)"]
    assert out[0] == f"{suite}: 6 runs; the suite is valid, but what they need is missing under {root} (listed below)"
    cifar, imagenet, teacher = _missing_lines(out)
    assert cifar.startswith(f"  dataset 'cifar10' not found or incomplete under {root} (expected: "
                            f"{root / 'cifar-10-batches-py'}/ with {', '.join(CIFAR10_FILES)}); ")
    assert cifar.endswith(f"needed by 2 runs: {', '.join(_run_ids(suite, 'cifar10'))}; get it from {CIFAR_URL}")
    assert imagenet.startswith(f"  dataset 'imagenet' not found or incomplete under {root}")
    assert imagenet.endswith(f"needed by 2 runs: {', '.join(_run_ids(suite, 'imagenet'))}; get it from "
                             f"{IMAGENET_URL}")
    assert teacher.startswith(f"  teacher weights of timm:caformer_b36 (recipe 'sdtv3_in1k_kd', field "
                              f"distill.teacher_weights): expected {root / TEACHER}; no such file; needed by 2 runs")
    assert "digits" not in "\n".join(_missing_lines(out)), "digits ship with scikit-learn: never missing"


def test_validate_passes_once_every_dataset_and_file_is_there(tmp_path, suite, capsys):
    root = tmp_path / "data"
    for name in CIFAR10_FILES:
        (root / "cifar-10-batches-py").mkdir(parents=True, exist_ok=True)
        (root / "cifar-10-batches-py" / name).write_bytes(b"")
    code, out, _ = _validate(capsys, suite, "--data-root", str(root))
    assert code == 2 and not any("'cifar10'" in line for line in _missing_lines(out))
    for split in ("train", "val"):
        (root / split / "n01440764").mkdir(parents=True)
        (root / split / "n01440764" / "a.JPEG").write_bytes(b"")
    (root / TEACHER).parent.mkdir(parents=True)
    (root / TEACHER).write_bytes(b"")
    code, out, err = _validate(capsys, suite, "--data-root", str(root))
    assert (code, err) == (0, []) and out[0] == f"{suite}: valid, 6 runs"
    assert not any(line.startswith("missing") for line in out)


def test_validate_without_a_data_root_checks_the_suite_alone(tmp_path, suite, capsys, monkeypatch):
    monkeypatch.setenv("SPIKEBENCH_DATA", str(tmp_path / "nothing-here"))
    code, out, err = _validate(capsys, suite)
    assert (code, err) == (0, []) and out[0] == f"{suite}: valid, 6 runs"


def test_a_dataset_needed_by_many_runs_is_one_line_naming_the_first_runs_and_counting_the_rest(tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text(SUITE.replace("seeds: [0, 1]", f"seeds: {list(range(RUN_IDS_SHOWN + 3))}")
                    .replace("[cifar10, digits]", "[cifar10]").split("  - models: [sdtv3")[0])
    specs = expand(load_suite(path))
    line, = missing_datasets(specs, str(tmp_path / "data"))
    named = ", ".join(spec.run_id for spec in specs[:RUN_IDS_SHOWN])
    assert f"needed by {len(specs)} runs: {named} and 3 more; get it from" in line


@pytest.mark.parametrize("dataset, prepare", [
    ("cifar10", lambda root: (root / "cifar-10-batches-py").mkdir()),
    ("imagenet", lambda root: (root / "train").mkdir()),
    ("dvs128", lambda root: (root / "events_np" / "train").mkdir(parents=True)),
], ids=["cifar-folder-without-files", "imagenet-without-classes", "dvs-without-classes"])
def test_the_check_raises_what_building_the_dataset_raises(tmp_path, dataset, prepare):
    """One place: the check finds a dataset's files with the builder's own code, so both say the same."""
    prepare(tmp_path)
    with pytest.raises(DatasetError) as built:
        build_dataset(dataset, "train", root=tmp_path)
    with pytest.raises(DatasetError) as checked:
        check_dataset(dataset, tmp_path)
    assert str(checked.value) == str(built.value)


def test_an_eval_only_run_needs_the_test_split_alone(tmp_path):
    for name in ("test_batch", "batches.meta"):
        (tmp_path / "cifar-10-batches-py").mkdir(exist_ok=True)
        (tmp_path / "cifar-10-batches-py" / name).write_bytes(b"")
    check_dataset("cifar10", tmp_path, splits=("test",))
    with pytest.raises(DatasetError, match=re.escape("data_batch_1 (missing)")):
        check_dataset("cifar10", tmp_path)


def test_run_refuses_a_missing_teacher_before_any_run_starts(tmp_path, capsys):
    path = tmp_path / "kd.yaml"
    path.write_text(SUITE.split("  - models: [qkformer")[0] + SUITE.split("[cifar10, digits]\n")[1])
    root, results = tmp_path / "data", tmp_path / "results"
    assert main(["run", str(path), "--data-root", str(root), "--results-dir", str(results), "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: teacher weights of timm:caformer_b36")
    assert f"expected {root / TEACHER}; no such file; needed by 2 runs" in err
    assert not (results / "runs").exists()
