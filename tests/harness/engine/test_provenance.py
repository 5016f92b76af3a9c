"""The code fingerprint: it changes with the code that computes results, and only with that code."""

import shutil

import pytest

from harness.engine.provenance import REPO, RESULT_CODE, code_fingerprint


def _copy_tree(tmp_path, name):
    root = tmp_path / name
    for package in ("zoo", "harness"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_copy_of_the_code_has_the_same_fingerprint(tmp_path):
    root = _copy_tree(tmp_path, "copy")
    (root / "zoo" / "__pycache__").mkdir(exist_ok=True)
    (root / "zoo" / "__pycache__" / "extra.cpython-311.pyc").write_bytes(b"compiled")
    assert code_fingerprint(root) == code_fingerprint()


@pytest.mark.parametrize("part", RESULT_CODE)
def test_editing_code_that_computes_results_changes_the_fingerprint(tmp_path, part):
    root = _copy_tree(tmp_path, "edited")
    target = root / part
    if target.is_dir():
        target = sorted(p for p in target.rglob("*") if p.is_file() and "__pycache__" not in p.parts)[0]
    target.write_bytes(target.read_bytes() + b"\n# edited\n")
    assert code_fingerprint(root) != code_fingerprint()


@pytest.mark.parametrize("part", ["harness/report", "harness/launch", "harness/tracking.py"])
def test_editing_code_that_only_moves_numbers_keeps_the_fingerprint(tmp_path, part):
    root = _copy_tree(tmp_path, "moved")
    target = root / part
    if target.is_dir():
        target = sorted(target.glob("*.py"))[0]
    target.write_bytes(target.read_bytes() + b"\n# edited\n")
    assert code_fingerprint(root) == code_fingerprint()


def test_the_gpu_driver_is_recorded_from_nvidia_smi(tmp_path, monkeypatch):
    """The driver comes from ``nvidia-smi`` where a CUDA device is seen (a stand-in script here: this machine has
    neither), and is None without a device or the tool."""
    import torch

    from harness.engine.provenance import gpu_driver, provenance

    assert "driver" in provenance()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_driver() is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_driver() is None  # no nvidia-smi on the PATH
    tool = tmp_path / "nvidia-smi"
    tool.write_text("#!/bin/sh\necho 550.54.15\necho 550.54.15\n")
    tool.chmod(0o755)
    assert gpu_driver() == "550.54.15"
