"""Result bundles made from a real tiny run: the round trip (export, import into an empty results directory, verify),
content addressing, idempotent import, and every kind of bad or hostile bundle refused in one line naming the
member, exit 2, with nothing written."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from harness.bundle.manifest import SCHEMA_FILE, parse, schema_text
from harness.cli import main

SITE = "labA"


def members_of(bundle: Path) -> dict[str, bytes]:
    """Every member of a bundle by name, in archive order."""
    with tarfile.open(bundle, "r:gz") as tar:
        return {info.name: tar.extractfile(info).read() for info in tar.getmembers()}


def write_tar(path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    """A gzip tar of ``entries``: (name, bytes) regular files, or ready TarInfo headers (links, devices)."""
    with gzip.open(path, "wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for item in entries:
            if isinstance(item, tarfile.TarInfo):
                tar.addfile(item)
            else:
                info = tarfile.TarInfo(item[0])
                info.size = len(item[1])
                tar.addfile(info, io.BytesIO(item[1]))
    return path


def rebundle(path: Path, members: dict[str, bytes], change_manifest=None, rehash: bool = True) -> Path:
    """A bundle of ``members`` whose manifest lists their true sizes and hashes (``rehash``), after
    ``change_manifest(manifest_dict)``."""
    manifest = json.loads(members["manifest.json"])
    if rehash:
        manifest["members"] = {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                               for name, data in members.items() if name != "manifest.json"}
    if change_manifest:
        change_manifest(manifest)
    body = [(name, data) for name, data in members.items() if name != "manifest.json"]
    return write_tar(path, [("manifest.json", json.dumps(manifest).encode()), *body])


def run_member(members: dict[str, bytes], name: str) -> str:
    return next(m for m in members if m.endswith("/" + name))


def refused(bundle: Path, results: Path, capsys, *expected: str) -> str:
    """Import ``bundle`` and check it is refused in one line naming ``expected``, with nothing written."""
    code = main(["import", str(bundle), "--results-dir", str(results)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err, err
    for part in expected:
        assert part in err, err
    assert not results.exists() or not any(results.rglob("*")), list(results.rglob("*"))
    return err


# ------------------------------------------------------------------ round trip
def test_round_trip_train_export_import_verify(trained, bundle, tmp_path, capsys):
    """Done when: a tiny suite trained, exported, imported into an empty results directory, verified."""
    empty = tmp_path / "elsewhere"
    assert main(["import", str(bundle), "--results-dir", str(empty)]) == 0
    run_id = trained["run"].name
    imported = empty / "imported" / SITE / run_id
    assert sorted(p.name for p in imported.iterdir()) == sorted(
        {"spec.json", "status.json", "config.json", "metrics.jsonl", "final.json", "energy.json", "predictions.npy",
         "predictions.json", "environment.json", "checkpoint.pt", "origin.json"})
    origin = json.loads((imported / "origin.json").read_text())
    assert origin["site"] == SITE and origin["code_differs"] is False
    assert origin["code"]["code_fingerprint"] == origin["local_code_fingerprint"]
    capsys.readouterr()
    assert main(["verify", str(bundle), "--results-dir", str(empty), "--images", "40"]) == 0
    out = capsys.readouterr().out
    assert f"{run_id}: verified: 64/64 predictions identical (exact mode" in out  # 40 images: 2 batches of 32
    verdict = json.loads((imported / "verification.json").read_text())
    assert verdict["verdict"] == "verified" and verdict["images"] == 64 and verdict["disagreements"] == 0
    assert verdict["date"].startswith("20") and verdict["mode"] == "exact"


def test_the_run_records_its_predictions_and_the_checkpoint_that_gave_them(trained):
    from harness.engine.predictions import read_predictions

    predictions, meta = read_predictions(trained["run"])
    final = json.loads((trained["run"] / "final.json").read_text())
    assert predictions.dtype == np.uint16 and len(predictions) == final["last"]["eval_images"] == 64
    assert (trained["run"] / "checkpoints" / meta["checkpoint"]).is_file() and meta["eval_batch"] == 32
    assert meta["split"] == "test" and predictions.max() < 10


def test_export_is_content_addressed_and_reproducible(trained, bundle, tmp_path, capsys):
    members = members_of(bundle)
    assert next(iter(members)) == "manifest.json"
    manifest = parse(members["manifest.json"], "manifest")
    assert set(manifest.members) == set(members) - {"manifest.json"}
    for name, entry in manifest.members.items():
        assert entry.sha256 == hashlib.sha256(members[name]).hexdigest() and entry.size == len(members[name])
    (run,) = manifest.runs
    checkpoint = members[run.checkpoint.member]
    assert run.checkpoint.sha256 == hashlib.sha256(checkpoint).hexdigest() and run.code.code_fingerprint
    environment = json.loads(members[run_member(members, "environment.json")])
    assert environment["packages"]["torch"] and environment["device"] == "cpu" and "driver" in environment
    capsys.readouterr()
    assert main(["export", trained["run"].name, "--results-dir", str(trained["root"]), "--site", SITE,
                 "--with-weights", "--out", str(tmp_path / "again.tar.gz")]) == 0
    assert (tmp_path / "again.tar.gz").read_bytes() == bundle.read_bytes()
    digest = hashlib.sha256(members["manifest.json"]).hexdigest()
    assert f"digest: {digest}" in capsys.readouterr().out


def test_without_weights_the_bundle_names_the_checkpoint_by_its_hash_only(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(trained["suite"]), "--results-dir", str(trained["root"])]) == 0
    (path,) = tmp_path.glob("spikebench-local-*.tar.gz")
    members = members_of(path)
    (run,) = parse(members["manifest.json"], "m").runs
    assert run.checkpoint.member is None and len(run.checkpoint.sha256) == 64
    assert not any("checkpoint" in name for name in members)
    assert hashlib.sha256(members["manifest.json"]).hexdigest().startswith(path.name.split("-")[2][:16])


def test_importing_twice_changes_nothing(bundle, tmp_path, capsys):
    results = tmp_path / "r"
    assert main(["import", str(bundle), "--results-dir", str(results)]) == 0
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in results.rglob("*") if p.is_file()}
    assert main(["import", str(bundle), "--results-dir", str(results)]) == 0
    assert "already imported" in capsys.readouterr().out
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in results.rglob("*") if p.is_file()}
    assert after == before and not list(results.rglob(".incoming-*"))


def test_a_different_result_under_the_same_site_and_run_id_is_refused_not_overwritten(bundle, tmp_path, capsys):
    results = tmp_path / "r"
    assert main(["import", str(bundle), "--results-dir", str(results)]) == 0
    members = members_of(bundle)
    final = run_member(members, "final.json")
    members[final] = members[final].replace(b'"status"', b'"note": 1, "status"')
    other = rebundle(tmp_path / "other.tar.gz", members)
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    assert main(["import", str(other), "--results-dir", str(results)]) == 2
    assert "already holds a different result" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == before


def test_a_local_run_with_the_same_id_is_never_touched(trained, bundle, tmp_path):
    import shutil

    results = tmp_path / "r"
    shutil.copytree(trained["run"], results / "runs" / trained["run"].name)
    before = {p: p.read_bytes() for p in (results / "runs").rglob("*") if p.is_file()}
    assert main(["import", str(bundle), "--results-dir", str(results)]) == 0
    assert {p: p.read_bytes() for p in (results / "runs").rglob("*") if p.is_file()} == before
    assert (results / "imported" / SITE / trained["run"].name / "spec.json").is_file()


def test_an_imported_run_from_other_code_is_marked(bundle, tmp_path):
    members = members_of(bundle)

    def other_code(manifest):
        manifest["runs"][0]["code"]["code_fingerprint"] = "0123456789abcdef"

    results = tmp_path / "r"
    assert main(["import", str(rebundle(tmp_path / "b.tar.gz", members, other_code)), "--results-dir",
                 str(results)]) == 0
    (origin,) = results.glob("imported/*/*/origin.json")
    record = json.loads(origin.read_text())
    assert record["code_differs"] is True and record["code"]["code_fingerprint"] == "0123456789abcdef"


# ------------------------------------------------------------------ verify
def _imported(bundle: Path, tmp_path: Path) -> tuple[Path, Path]:
    results = tmp_path / "r"
    assert main(["import", str(bundle), "--results-dir", str(results)]) == 0
    (run,) = (results / "imported" / SITE).iterdir()
    return results, run


def test_verify_counts_the_images_whose_prediction_differs(bundle, tmp_path, capsys):
    from harness.engine.predictions import read_predictions, write_predictions

    results, run = _imported(bundle, tmp_path)
    predictions, meta = read_predictions(run)
    changed = predictions.astype(np.int64)
    changed[[3, 7, 50]] = (changed[[3, 7, 50]] + 1) % 10
    facts = {k: v for k, v in meta.items() if k not in ("file", "dtype", "images", "num_classes", "sha256")}
    write_predictions(run, changed, 10, **facts)
    capsys.readouterr()
    assert main(["verify", run.name, "--results-dir", str(results)]) == 1
    out = capsys.readouterr().out
    assert "NOT verified: 3 of 64 predictions differ" in out and "[3, 7, 50]" in out
    verdict = json.loads((run / "verification.json").read_text())
    assert verdict["verdict"] == "disagrees" and verdict["disagreements"] == 3
    capsys.readouterr()
    assert main(["verify", str(run), "--results-dir", str(results), "--images", "32"]) == 1  # 3 and 7 are in batch 1
    assert "2 of 32 predictions differ" in capsys.readouterr().out
    assert main(["verify", str(run), "--results-dir", str(results), "--tolerance", "0.05"]) == 0  # 3 <= 64 * 0.05
    out = capsys.readouterr().out
    assert "verified: 61/64 predictions identical (exact mode: tolerance 0.05 of the images: at most 3 may" in out


def test_exact_mode_is_fp32_on_cpu_then_and_now_anything_else_is_tolerant():
    import torch

    from harness.bundle.verify import _exact
    from harness.recipe import load_recipe

    fp32 = load_recipe("digits")
    bf16 = fp32.model_copy(update={"train": fp32.train.model_copy(update={"precision": "bf16"})})
    layout = fp32.model_copy(update={"train": fp32.train.model_copy(update={"channels_last": True})})
    cpu = torch.device("cpu")
    assert _exact(fp32, "cpu", cpu)
    assert not _exact(bf16, "cpu", cpu) and not _exact(layout, "cpu", cpu) and not _exact(fp32, "cuda:0", cpu)
    assert not _exact(fp32, "cpu", torch.device("cuda"))


def test_verify_refuses_weights_that_are_not_the_runs(bundle, tmp_path, capsys):
    results, run = _imported(bundle, tmp_path)
    other = tmp_path / "other.pt"
    other.write_bytes(b"not the checkpoint")
    assert main(["verify", run.name, "--results-dir", str(results), "--weights", str(other)]) == 2
    err = capsys.readouterr().err
    assert "not the weights that gave its predictions" in err and err.count("\n") == 1


def test_verify_without_predictions_or_checkpoint_is_one_line(trained, bundle, tmp_path, capsys):
    results, run = _imported(bundle, tmp_path)
    (run / "checkpoint.pt").unlink()
    assert main(["verify", run.name, "--results-dir", str(results)]) == 2
    assert "--weights FILE" in capsys.readouterr().err
    (run / "predictions.npy").unlink()
    assert main(["verify", run.name, "--results-dir", str(results)]) == 2
    assert "recorded no per-image predictions" in capsys.readouterr().err
    assert main(["verify", "no-such-run", "--results-dir", str(results)]) == 2
    assert "expected a bundle file, a run directory, or a run id (16 hex digits)" in capsys.readouterr().err
    assert main(["verify", "0123456789abcdef", "--results-dir", str(results)]) == 2
    assert "expected a bundle file, a run directory, or the id of a run under" in capsys.readouterr().err


def test_a_run_id_both_local_and_imported_must_be_named_by_its_directory(trained, bundle, tmp_path, capsys):
    import shutil

    results = tmp_path / "r"
    shutil.copytree(trained["run"], results / "runs" / trained["run"].name)
    assert main(["import", str(bundle), "--results-dir", str(results)]) == 0
    capsys.readouterr()
    assert main(["verify", trained["run"].name, "--results-dir", str(results)]) == 2
    assert "2 runs have this id" in capsys.readouterr().err
    assert main(["verify", str(results / "runs" / trained["run"].name), "--results-dir", str(results)]) == 0
    assert "verified: 64/64" in capsys.readouterr().out


# ------------------------------------------------------------------ bad and hostile bundles
def test_a_tampered_member_is_refused_naming_it(bundle, tmp_path, capsys):
    members = members_of(bundle)
    final = run_member(members, "final.json")
    data = bytearray(members[final])
    data[10] ^= 0x01
    members[final] = bytes(data)
    tampered = rebundle(tmp_path / "t.tar.gz", members, rehash=False)
    refused(tampered, tmp_path / "r", capsys, final, "SHA-256", "altered")


def _header(name: str, kind: bytes, **fields) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


HOSTILE = {
    "dotdot": (lambda run: ("../escape.json", b"{}"), "'..'"),
    "absolute": (lambda run: ("/tmp/spikebench-abs.json", b"{}"), "an absolute path"),
    "symlink": (lambda run: _header(f"runs/{run}/link.json", tarfile.SYMTYPE, linkname="spec.json"), "a link"),
    "outside_symlink": (lambda run: _header(f"runs/{run}/x", tarfile.SYMTYPE, linkname="/etc/passwd"),
                        "data filter"),
    "hardlink": (lambda run: _header(f"runs/{run}/h.json", tarfile.LNKTYPE, linkname=f"runs/{run}/spec.json"),
                 "a link"),
    "device": (lambda run: _header(f"runs/{run}/dev", tarfile.CHRTYPE, devmajor=1, devminor=3), "data filter"),
    "extra": (lambda run: (f"runs/{run}/notes.txt", b"hello"), "not listed in manifest.json"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_members_are_refused_with_nothing_written(case, bundle, tmp_path, capsys):
    members = members_of(bundle)
    run = run_member(members, "spec.json").split("/")[1]
    make, expected = HOSTILE[case]
    entries = [("manifest.json", members["manifest.json"]), make(run)] + \
        [(n, d) for n, d in members.items() if n != "manifest.json"]
    hostile = write_tar(tmp_path / "h.tar.gz", entries)
    refused(hostile, tmp_path / "r", capsys, expected, "member")
    assert not (tmp_path / "escape.json").exists() and not Path("/tmp/spikebench-abs.json").exists()


def _drop_member(members, name):
    del members[run_member(members, name)]


def _set(field, value):
    def change(manifest):
        manifest[field] = value
    return change


def _bad_model(members):
    spec_name = run_member(members, "spec.json")
    members[spec_name] = members[spec_name].replace(b"qkformer_4_384.cifar10", b"no_such_model")


BAD = {
    "missing_member": (lambda m: None, lambda man: man["members"].__setitem__(
        next(iter(man["members"])).rsplit("/", 1)[0] + "/firing.json", {"sha256": "0" * 64, "size": 2}),
        "listed in manifest.json but not in the archive"),
    "unknown_schema": (lambda m: None, _set("schema_version", 2), "unknown schema_version 2"),
    "bad_site": (lambda m: None, _set("site", "../up"), "field site"),
    "bad_field": (lambda m: None, lambda man: man["runs"][0].__setitem__("state", "running"), "field runs.0.state"),
    "spec_does_not_hash_to_its_id": (_bad_model, None, "hashes to run id"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_manifests_and_specs_are_refused_naming_the_member(case, bundle, tmp_path, capsys):
    members = members_of(bundle)
    change_members, change_manifest, expected = BAD[case]
    change_members(members)
    refused(rebundle(tmp_path / "b.tar.gz", members, change_manifest), tmp_path / "r", capsys, expected)


def test_a_spec_naming_an_unknown_model_is_refused_even_when_its_id_matches(bundle, tmp_path, capsys):
    members = members_of(bundle)
    spec_name = run_member(members, "spec.json")
    spec = json.loads(members[spec_name])
    spec["model"] = "no_such_model"
    from harness.suite import RunSpec

    new_id = RunSpec.model_validate(spec).run_id
    old_id = spec_name.split("/")[1]
    renamed = {name.replace(old_id, new_id): data for name, data in members.items()}
    renamed[spec_name.replace(old_id, new_id)] = json.dumps(spec).encode()

    def rename(manifest):
        manifest["runs"][0]["run_id"] = new_id
        manifest["runs"][0]["checkpoint"]["member"] = manifest["runs"][0]["checkpoint"]["member"].replace(
            old_id, new_id)

    refused(rebundle(tmp_path / "b.tar.gz", renamed, rename), tmp_path / "r", capsys,
            "spec.json", "'no_such_model' is not a registered zoo model")


def test_not_a_bundle_truncated_empty_and_manifest_problems(bundle, tmp_path, capsys):
    results = tmp_path / "r"
    plain = tmp_path / "plain.tar.gz"
    plain.write_bytes(b"just text, not gzip")
    refused(plain, results, capsys, "plain.tar.gz", "not a complete gzip tar")
    data = bundle.read_bytes()
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(data[: len(data) // 2])
    refused(truncated, results, capsys, "cut.tar.gz", "not a complete gzip tar")
    members = members_of(bundle)
    no_manifest = write_tar(tmp_path / "nm.tar.gz", [(n, d) for n, d in members.items() if n != "manifest.json"])
    refused(no_manifest, results, capsys, "manifest.json", "expected as the first member")
    broken = write_tar(tmp_path / "bm.tar.gz", [("manifest.json", b"{not json")])
    refused(broken, results, capsys, "member manifest.json", "not JSON")
    refused(tmp_path / "absent.tar.gz", results, capsys, "no such bundle file")


def test_size_limits_refuse_a_large_member_before_reading_it(bundle, tmp_path, capsys):
    refused_line = None
    code = main(["import", str(bundle), "--results-dir", str(tmp_path / "r"), "--max-bytes", "100000"])
    refused_line = capsys.readouterr().err
    assert code == 2 and "checkpoint.pt" in refused_line and "above the limit of 100000" in refused_line
    assert not (tmp_path / "r").exists()
    bomb = tmp_path / "bomb.tar.gz"
    members = members_of(bundle)
    zeros = b"\0" * (20 << 20)  # 20 MiB of zeros compress to about 20 kB
    members[run_member(members, "metrics.jsonl")] = zeros
    rebundle(bomb, members)
    assert bomb.stat().st_size < 2 << 20
    assert main(["import", str(bomb), "--results-dir", str(tmp_path / "r"), "--max-bytes", str(10 << 20)]) == 2
    assert "metrics.jsonl" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_a_runs_records_have_a_tighter_limit_than_its_checkpoint():
    from harness.bundle.importer import Limits

    limits = Limits(member_bytes=1000, record_bytes=10)
    assert limits.for_member("runs/0123456789abcdef/checkpoint.pt") == 1000
    assert limits.for_member("runs/0123456789abcdef/final.json") == 10


# ------------------------------------------------------------------ schema and CLI input
def test_the_committed_json_schema_is_the_manifests(bundle):
    assert SCHEMA_FILE.read_text() == schema_text()
    schema = json.loads(SCHEMA_FILE.read_text())
    manifest = json.loads(members_of(bundle)["manifest.json"])
    assert set(manifest) == set(schema["properties"]) and set(schema["required"]) <= set(manifest)
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    assert "harness/bundle/schema/manifest-v1.json" in readme


@pytest.mark.parametrize("argv, expected", [
    (["export", "0123456789abcdef"], "expected a suite file (.yaml) or the id of a run"),
    (["export", "RUN", "--site", "../x"], "--site '../x'"),
    (["export", "RUN", "--format", "hf", "--with-weights"], "--with-weights: only for bundles"),
])  # the numeric flags' ranges: tests/harness/test_cli_args.py
def test_bad_command_line_input_is_one_line(argv, expected, trained, capsys):
    argv = [a.replace("RUN", trained["run"].name) for a in argv]
    assert main([*argv, "--results-dir", str(trained["root"])]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1, err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_verify_on_a_missing_gpu_is_one_line(trained, capsys):
    assert main(["verify", trained["run"].name, "--results-dir", str(trained["root"]), "--device", "cuda"]) == 2
    assert "--device cuda: torch sees no CUDA device" in capsys.readouterr().err


def test_a_suite_export_skips_an_unreadable_run_with_a_warning(trained, tmp_path):
    import shutil

    root = tmp_path / "results"
    shutil.copytree(trained["run"], root / "runs" / trained["run"].name)
    (root / "runs" / "broken").mkdir()
    (root / "runs" / "broken" / "spec.json").write_text("{not json")
    with pytest.warns(UserWarning, match="broken/spec.json: not a readable run spec"):
        assert main(["export", str(trained["suite"]), "--results-dir", str(root), "--out",
                     str(tmp_path / "b.tar.gz")]) == 0
    (run,) = parse(members_of(tmp_path / "b.tar.gz")["manifest.json"], "m").runs
    assert run.run_id == trained["run"].name


def test_verify_without_the_evaluation_data_is_one_line(bundle, tmp_path, capsys):
    results, run = _imported(bundle, tmp_path)
    spec = json.loads((run / "spec.json").read_text())
    (run / "spec.json").write_text(json.dumps({**spec, "dataset": "cifar10"}))  # a dataset not on this machine
    capsys.readouterr()
    assert main(["verify", str(run), "--results-dir", str(results), "--data-root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "dataset 'cifar10' not found" in err and "(pass --data-root)" in err and err.count("\n") == 1


def test_unfinished_runs_are_left_out_with_a_note_and_a_missing_checkpoint_refuses_with_weights(trained, tmp_path,
                                                                                                  capsys):
    import shutil

    root = tmp_path / "results"
    shutil.copytree(trained["run"], root / "runs" / trained["run"].name)
    failed = root / "runs" / "0000000000000000"
    shutil.copytree(trained["run"], failed)
    status = json.loads((failed / "status.json").read_text())
    (failed / "status.json").write_text(json.dumps({**status, "state": "failed"}))
    assert main(["export", str(trained["suite"]), "--results-dir", str(root), "--out", str(tmp_path / "b.tar.gz")]) == 0
    assert "note: 0000000000000000: failed, not finished; left out" in capsys.readouterr().out
    assert len(parse(members_of(tmp_path / "b.tar.gz")["manifest.json"], "m").runs) == 1
    shutil.rmtree(root / "runs" / trained["run"].name / "checkpoints")
    assert main(["export", trained["run"].name, "--results-dir", str(root), "--with-weights"]) == 2
    assert "--with-weights, but its checkpoint is gone" in capsys.readouterr().err


def test_a_site_folder_linked_outside_the_results_is_refused(bundle, tmp_path, capsys):
    results, outside = tmp_path / "r", tmp_path / "outside"
    (results / "imported").mkdir(parents=True)
    outside.mkdir()
    (results / "imported" / SITE).symlink_to(outside)
    assert main(["import", str(bundle), "--results-dir", str(results)]) == 2
    assert "outside" in capsys.readouterr().err
    assert list(outside.iterdir()) == [] and not list(results.rglob(".incoming-*"))


def test_verify_refuses_an_evaluation_set_smaller_than_the_recorded_one(bundle, tmp_path, capsys):
    results, run = _imported(bundle, tmp_path)
    spec = json.loads((run / "spec.json").read_text())
    (run / "spec.json").write_text(json.dumps({**spec, "subset": 32}))  # 32 evaluation images, 64 recorded
    capsys.readouterr()
    assert main(["verify", str(run), "--results-dir", str(results)]) == 2
    assert "digits/test: 32 evaluation images here, the run recorded predictions for 64" in capsys.readouterr().err
