"""`weights import`, `verify` and `ls`: a hand-downloaded checkpoint is stored only once it reads weights-only and
maps strictly onto its model; what is stored is re-checked later; the listing tells what is there."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import torch
from conftest import FILE, MODEL, OTHER_MODEL, official_checkpoint, write_catalog

import zoo
from harness.audit import read_weights_file
from harness.cli import main
from harness.weights import load_catalog
from harness.weights.fitting import build_model


def weights(tmp_path, command: str, *args: str) -> int:
    return main(["weights", command, *args, "--catalog", str(tmp_path / "catalog.yaml"),
                 "--data-root", str(tmp_path / "data")])


def stored(tmp_path):
    return tmp_path / "data" / "weights" / MODEL / FILE


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture(autouse=True)
def catalog(tmp_path):
    return write_catalog(tmp_path / "catalog.yaml")


class CodeRunner:
    """A pickle payload that would run code when unpickled: it writes a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_official_checkpoint_is_imported_and_loads_into_the_model(tmp_path, checkpoint):
    assert weights(tmp_path, "import", MODEL, str(checkpoint)) == 0
    dest = stored(tmp_path)
    assert dest.read_bytes() == checkpoint.read_bytes()
    record = json.loads(dest.with_name(FILE + ".sha256").read_text())
    assert record["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert record["origin"] == f"imported from {checkpoint.resolve()}"
    model = build_model(load_catalog(tmp_path / "catalog.yaml").get(MODEL))
    released = read_weights_file(dest)
    zoo.load_official_state_dict(model, released)
    assert torch.equal(model.head.weight, released["model"]["head.weight"])


def test_checkpoint_in_our_own_layout_is_imported(tmp_path):
    model = build_model(load_catalog(tmp_path / "catalog.yaml").get(MODEL))
    torch.save({"model": model.state_dict()}, tmp_path / "ours.pth")
    assert weights(tmp_path, "import", MODEL, str(tmp_path / "ours.pth")) == 0 and stored(tmp_path).is_file()


def test_our_layout_with_a_wrong_shape_names_the_first_tensor(tmp_path, capsys):
    state = build_model(load_catalog(tmp_path / "catalog.yaml").get(MODEL)).state_dict()
    key = next(k for k, v in state.items() if v.dim() == 2)
    state[key] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "bad.pth")
    assert weights(tmp_path, "import", MODEL, str(tmp_path / "bad.pth")) == 2
    assert f"shape mismatch at {key}: file (3, 3) vs model" in one_error_line(capsys)
    assert not stored(tmp_path).parent.exists()


def test_checkpoint_of_another_configuration_is_refused_naming_a_tensor(tmp_path, capsys):
    other = official_checkpoint(tmp_path / "other.pth", OTHER_MODEL)
    assert weights(tmp_path, "import", MODEL, str(other)) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {other}: cannot load official state_dict") and "official (" in line
    assert not stored(tmp_path).parent.exists()  # no empty model folder left behind


def test_pickle_carrying_code_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "marker"
    torch.save({"model": {"head.weight": CodeRunner(marker)}}, tmp_path / "evil.pth")
    assert weights(tmp_path, "import", MODEL, str(tmp_path / "evil.pth")) == 2
    line = one_error_line(capsys)
    assert f"{tmp_path / 'evil.pth'}: not a readable" in line and "would call exec" in line
    assert not marker.exists() and not stored(tmp_path).parent.exists()


@pytest.mark.parametrize("problem", ["missing", "truncated"])
def test_missing_or_truncated_file_is_one_line(tmp_path, checkpoint, capsys, problem):
    path = tmp_path / "bad.pth"
    if problem == "truncated":
        path.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    assert weights(tmp_path, "import", MODEL, str(path)) == 2
    assert one_error_line(capsys).startswith(f"error: {path}: ")
    assert not stored(tmp_path).exists()


def test_file_differing_from_the_catalog_md5_is_refused(tmp_path, checkpoint, capsys):
    write_catalog(tmp_path / "catalog.yaml", md5="0" * 32)
    assert weights(tmp_path, "import", MODEL, str(checkpoint)) == 2
    assert "does not match the catalog's " + "0" * 32 in one_error_line(capsys)
    write_catalog(tmp_path / "catalog.yaml", md5=hashlib.md5(checkpoint.read_bytes()).hexdigest())
    assert weights(tmp_path, "import", MODEL, str(checkpoint)) == 0


def test_symlink_in_place_of_the_file_is_not_written_through(tmp_path, checkpoint, capsys):
    outside = tmp_path / "outside.pth"
    outside.write_bytes(b"keep")
    stored(tmp_path).parent.mkdir(parents=True)
    stored(tmp_path).symlink_to(outside)
    assert weights(tmp_path, "import", MODEL, str(checkpoint)) == 2
    assert "symbolic link" in one_error_line(capsys) and outside.read_bytes() == b"keep"


def test_verify_reports_each_file_and_fails_on_any_problem(tmp_path, checkpoint, capsys):
    assert weights(tmp_path, "import", MODEL, str(checkpoint)) == 0
    capsys.readouterr()
    assert weights(tmp_path, "verify") == 0
    assert capsys.readouterr().out.startswith(f"ok             {stored(tmp_path)}")
    with stored(tmp_path).open("ab") as f:  # changed after it was recorded
        f.write(b"x")
    assert weights(tmp_path, "verify", MODEL) == 2
    out, err = capsys.readouterr()
    assert out.startswith("sha mismatch") and err.strip() == "error: 1 of 1 stored weights files failed verification"


def test_verify_tells_unreadable_from_not_fitting(tmp_path, checkpoint, capsys):
    from harness.weights.store import Digests, hash_file, write_record

    folder = stored(tmp_path).parent
    folder.mkdir(parents=True)
    (folder / "junk.pth").write_bytes(b"junk")
    official_checkpoint(folder / "other.pth", OTHER_MODEL)
    for name in ("junk.pth", "other.pth"):  # recorded, so the hash checks pass and the load decides
        digests: Digests = hash_file(folder / name)
        write_record(folder / name, digests, "test")
    (folder / "unrecorded.pth").write_bytes(b"x")
    assert weights(tmp_path, "verify", MODEL) == 2
    statuses = {line.split(str(folder) + os.sep)[1].split()[0]: line.split(str(folder))[0].strip()
                for line in capsys.readouterr().out.splitlines()}
    assert statuses == {"junk.pth": "unreadable", "other.pth": "does not fit", "unrecorded.pth": "unrecorded"}


def test_verify_of_a_model_with_nothing_stored_is_one_line(tmp_path, capsys):
    assert weights(tmp_path, "verify", MODEL) == 2
    assert "nothing stored under" in one_error_line(capsys)


def test_ls_shows_what_is_stored_and_how_its_hash_compares(tmp_path, checkpoint, capsys):
    sha256 = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    write_catalog(tmp_path / "catalog.yaml", sha256=sha256)
    assert weights(tmp_path, "ls", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["model"], row["present"], row["sha256_status"]) == (MODEL, False, "-")
    assert weights(tmp_path, "import", MODEL, str(checkpoint)) == 0
    capsys.readouterr()
    assert weights(tmp_path, "ls", "qkformer*") == 0
    assert f"{MODEL} " in capsys.readouterr().out
    assert weights(tmp_path, "ls", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["present"], row["sha256_status"], row["stored_path"]) == (True, "matches pinned", str(stored(tmp_path)))
    os.utime(stored(tmp_path), ns=(0, 0))  # touched since it was recorded: ls does not trust the record
    assert weights(tmp_path, "ls", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["sha256_status"] == "changed since recorded"


def test_ls_pattern_matching_nothing_is_one_line(tmp_path, capsys):
    assert weights(tmp_path, "ls", "qkformer_2_256.cifar10") == 2
    assert f"did you mean {MODEL}" in one_error_line(capsys)


def test_model_folder_linked_outside_the_data_root_is_refused(tmp_path, checkpoint, capsys):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    stored(tmp_path).parent.parent.mkdir(parents=True)
    stored(tmp_path).parent.symlink_to(outside)
    assert weights(tmp_path, "import", MODEL, str(checkpoint)) == 2
    assert "outside" in one_error_line(capsys) and list(outside.iterdir()) == []


def test_data_root_that_is_a_file_is_one_line(tmp_path, checkpoint, capsys):
    (tmp_path / "data").write_text("not a folder")
    assert weights(tmp_path, "import", MODEL, str(checkpoint)) == 2
    assert "cannot create the folder" in one_error_line(capsys)


def test_wrong_sha256_flag_is_refused(tmp_path, checkpoint, capsys):
    assert weights(tmp_path, "import", MODEL, str(checkpoint), "--sha256", "F" * 64) == 2
    assert "does not match the expected " + "f" * 64 in one_error_line(capsys) and not stored(tmp_path).exists()
    assert weights(tmp_path, "import", MODEL, str(checkpoint), "--sha256", "xyz") == 2
    assert "--sha256 'xyz': expected 64 hex digits" in one_error_line(capsys)


def test_safetensors_release_is_stored_under_its_own_suffix(tmp_path, checkpoint, capsys):
    from safetensors.torch import save_file

    tensors = read_weights_file(checkpoint)["model"]
    save_file(tensors, tmp_path / "release.safetensors")
    assert weights(tmp_path, "import", MODEL, str(tmp_path / "release.safetensors")) == 2  # catalog: a .pth
    assert f"is stored as {FILE}" in one_error_line(capsys)
    write_catalog(tmp_path / "catalog.yaml", file=None, format="safetensors")
    assert weights(tmp_path, "import", MODEL, str(tmp_path / "release.safetensors")) == 0
    assert (stored(tmp_path).parent / f"{MODEL}.safetensors").is_file()
    assert weights(tmp_path, "verify", MODEL) == 0


def test_missing_catalog_file_is_one_line(tmp_path, capsys):
    assert main(["weights", "ls", "--catalog", str(tmp_path / "none.yaml")]) == 2
    assert one_error_line(capsys) == f"error: {tmp_path / 'none.yaml'}: weights catalog file not found"
