"""Dataset files written by an attacker: a crafted CIFAR pickle is refused before any of its code runs."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from data_formats import write_cifar10, write_cifar100, write_py2_pickle

from harness.data import DatasetError, build_dataset


class _Payload:
    """Unpickles as ``func(*args)``: what a crafted pickle does to run code."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch(marker: Path) -> list[tuple[object, tuple]]:
    """Calls that would create ``marker`` if the loader ran them (shell, eval, exec, subprocess)."""
    return [
        (os.system, (f"touch {marker}",)),
        (builtins.eval, (f"open({str(marker)!r}, 'w')",)),
        (builtins.exec, (f"open({str(marker)!r}, 'w')",)),
        (subprocess.call, (["touch", str(marker)],)),
    ]


@pytest.mark.parametrize("call", range(4), ids=["os.system", "eval", "exec", "subprocess"])
@pytest.mark.parametrize("victim", ["batches.meta", "data_batch_1"])
def test_crafted_cifar_pickle_is_refused_and_its_code_never_runs(tmp_path, call, victim):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    func, args = _touch(marker)[call]
    # the payload hides inside an otherwise well-formed batch, as the value of a key the reader needs
    write_py2_pickle({b"data": _Payload(func, *args), b"labels": [0], b"label_names": [b"x"] * 10},
                     tmp_path / "cifar-10-batches-py" / victim)
    with pytest.raises(DatasetError) as err:
        build_dataset("cifar10", "train", root=tmp_path)
    assert not marker.exists(), "the crafted pickle ran code"
    reason = str(err.value).splitlines()[0]
    assert f"{victim} is malformed: refused: it references " in reason and f".{func.__name__}, which" in reason
    assert "only dicts, lists, str, bytes, numbers and numpy arrays" in reason


def test_refusal_holds_through_the_command_line(tmp_path, suite_writer, tiny_model_entry):
    """As an attacker would get it run: ``harness run`` on a suite reading the poisoned CIFAR-10 folder."""
    data = tmp_path / "data"
    write_cifar10(data)
    marker = tmp_path / "pwned"
    write_py2_pickle(_Payload(os.system, f"touch {marker}"), data / "cifar-10-batches-py" / "batches.meta")
    suite = suite_writer(tmp_path, "poisoned", [tiny_model_entry.replace("dataset: digits", "dataset: cifar10")])
    results = tmp_path / "results"
    run = subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--data-root", str(data),
                          "--results-dir", str(results), "--no-report"], capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    assert not marker.exists(), "the crafted pickle ran code"
    status = next(results.glob("runs/*/status.json")).read_text()
    assert "batches.meta is malformed: refused: it references posix.system" in status


def test_real_layouts_still_load_through_the_restricted_unpickler(tmp_path):
    """Python 2's files name numpy.core, Python 3 copies numpy._core, protocol 2 copies encode bytes via _codecs."""
    write_cifar10(tmp_path / "py2")
    folder = tmp_path / "py2" / "cifar-10-batches-py"
    for path in folder.iterdir():  # the module names numpy 1.x wrote, as in the files on cs.toronto.edu
        path.write_bytes(path.read_bytes().replace(b"numpy._core.", b"numpy.core."))
    assert len(build_dataset("cifar10", "test", root=tmp_path / "py2")) == 4
    written = write_cifar100(tmp_path / "copy", str_keys=True)
    folder = tmp_path / "copy" / "cifar-100-python"
    for protocol in (2, 5):
        for name in ("train", "test", "meta"):
            obj = pickle.loads((folder / name).read_bytes())
            (folder / name).write_bytes(pickle.dumps(obj, protocol=protocol))
        assert b"_codecs" in (folder / "meta").read_bytes() or protocol != 2
        test = build_dataset("cifar100", "test", root=tmp_path / "copy")
        assert np.array_equal(test.labels, written["test"][1]) and test.classes[3] == "class3"


def test_codecs_encode_is_accepted_only_as_latin1(tmp_path):
    write_cifar10(tmp_path)
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    import codecs

    write_py2_pickle({b"label_names": [_Payload(codecs.encode, "x", "rot13")] * 10}, meta)
    with pytest.raises(DatasetError, match="only accepted as encode\\(str, 'latin1'\\)"):
        build_dataset("cifar10", "test", root=tmp_path)


def test_event_files_holding_pickled_objects_are_refused(tmp_path):
    """An .npz whose array holds Python objects would unpickle them: np.load runs with allow_pickle=False."""
    from data_formats import write_spikingjelly_events

    write_spikingjelly_events(tmp_path, "dvs128", per_class=1)
    marker = tmp_path / "pwned"
    victim = sorted((tmp_path / "events_np" / "train" / "0").iterdir())[0]
    payload = np.array([_Payload(os.system, f"touch {marker}")], dtype=object)
    np.savez(victim, t=payload, x=payload, y=payload, p=payload)
    with pytest.raises(DatasetError, match="Object arrays cannot be loaded when allow_pickle=False"):
        build_dataset("dvs128", "train", root=tmp_path, T=2)[0]
    assert not marker.exists()
