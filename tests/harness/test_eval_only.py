"""Eval-only runs from weights files: through `harness run` on digits, with an official-layout checkpoint of a small
QKFormer written here; the run id, the rerun skip, the released suite, and every bad input as one line, exit 2."""

import hashlib
import json
import os
import pickle
import textwrap
from pathlib import Path

import pytest
import torch

from harness.cli import main

MODEL = "qkformer_4_384.cifar10"
SMALL = {"widths": [16, 32, 64], "depths": [1, 1, 1], "heads": 2}
REFERENCE_KEYS = Path(__file__).resolve().parents[1] / "zoo" / "data" / "official_keys_qkformer_msvit.json"
T = 2


def official_checkpoint(path: Path, seed: int = 0, **overrides) -> dict[str, torch.Tensor]:
    """A small QKFormer's weights (BN statistics set on digits so that its neurons fire) saved in the official
    code's key layout, wrapped as the official scripts save them (``{"model": state_dict}``)."""
    import zoo
    from harness.data import build_dataset
    from harness.metrics.energy import calibrate_batch_norm
    from harness.recipe import load_recipe

    torch.manual_seed(seed)
    model = zoo.create_model(MODEL, T=T, num_classes=10, **{**SMALL, **overrides})
    data = build_dataset("digits", "train", T=T, recipe=load_recipe("digits").data)
    calibrate_batch_norm(model, [torch.stack([data[i][0] for i in range(64)])])
    state = {model._official_key(k): v for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state}, path)
    return state


def suite_text(*entries: str, budget: str = "{subset: 96}") -> str:
    return textwrap.dedent(f"name: weights\nbudget: {budget}\nruns:\n") + "".join(f"  - {e}\n" for e in entries)


def entry(weights: str, **overrides) -> str:
    model_overrides = json.dumps({**SMALL, **overrides})
    return f"{{model: {MODEL}, dataset: digits, T: {T}, recipe: digits, overrides: {model_overrides}, weights: {weights}}}"


def write_catalog(path: Path, sha256: str | None = None, model: str = MODEL) -> Path:
    pinned = f'"{sha256}"' if sha256 else "null"
    path.write_text(textwrap.dedent(f"""\
        entries:
          - model: {model}
            source: https://github.com/zhouchenlin2096/QKFormer
            url: null
            file: released.pth
            format: official
            sha256: {pinned}
            checked: written by the test
        """))
    return path


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Two eval-only runs through `harness run`: a batch-dependent QKFormer (SSA projection over T*B, the official
    quirk) from a path relative to the data root, and a batch-independent one from an absolute path."""
    base = tmp_path_factory.mktemp("eval_only")
    data = base / "data"
    official_checkpoint(data / "ckpt" / "coupled.pth")
    official_checkpoint(base / "elsewhere" / "independent.pth", official_quirks=False)
    suite = base / "weights.yaml"
    suite.write_text(suite_text(entry("ckpt/coupled.pth"),
                                entry(str(base / "elsewhere" / "independent.pth"), official_quirks=False)))
    root = base / "results"
    code = main(["run", str(suite), "--results-dir", str(root), "--data-root", str(data)])
    return {"base": base, "data": data, "suite": suite, "root": root, "code": code}


def _runs(root: Path) -> dict[str, dict]:
    """Each run directory's spec, final.json and firing.json, by the weights file's name."""
    runs = {}
    for directory in (root / "runs").iterdir():
        spec = json.loads((directory / "spec.json").read_text())
        runs[Path(spec["weights"]).name] = {"dir": directory, "spec": spec,
                                            "final": json.loads((directory / "final.json").read_text()),
                                            "firing": json.loads((directory / "firing.json").read_text())}
    return runs


def test_an_eval_only_run_records_both_batches_firing_energy_and_the_weights_hash(evaluated):
    assert evaluated["code"] == 0
    runs = _runs(evaluated["root"])
    coupled, independent = runs["coupled.pth"], runs["independent.pth"]
    for name, run in (("ckpt/coupled.pth", coupled), ("elsewhere/independent.pth", independent)):
        final = run["final"]
        path = evaluated["data"] / name if name.startswith("ckpt") else evaluated["base"] / name
        assert final["eval_only"] and final["epochs_completed"] == 0
        assert final["weights"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert final["weights"]["sha256"] == run["spec"]["weights_sha256"]
        assert final["eval_images"] == 96 and final["eval_batch"] == 32  # digits recipe: batch_size 32
        assert 0 <= final["last"]["eval_top1"] <= 100 and 0 <= final["top1_batch1"] <= 100
        assert final["top1_batch_diff"] == pytest.approx(final["last"]["eval_top1"] - final["top1_batch1"])
        assert final["energy"]["paper"]["energy_mj"] > 0 and final["energy"]["ops"]["energy_mj"] > 0
        assert final["energy"]["paper"]["dense_sops"] > final["energy"]["paper"]["sops"] > 0
        assert set(final["neurobench"]) >= {"activation_sparsity", "effective_acs"}
        layers = {row["name"]: row for row in run["firing"]["layers"]}
        q = layers["stages.0.0.attn.q.lif"]
        assert (q["block"], q["layer"]) == ("stages.0.0", "attn.q.lif")
        assert len(q["per_step"]) == T and sum(q["per_step"]) / T == pytest.approx(q["mean"])
        assert run["firing"]["overall"] > 0
        assert "| stages.0.0 | attn.q.lif |" in (run["dir"] / "firing.md").read_text()
        assert (run["dir"] / "energy.json").exists()
    assert coupled["final"]["batch_dependent"] and coupled["final"]["batch1"]["images"] == 96
    assert "batch-dependent" in coupled["final"]["batch1"]["method"]
    assert not independent["final"]["batch_dependent"]
    check = independent["final"]["batch1"]
    assert check["images"] == 64 and check["prediction_changes"] == 0 and "seeded images" in check["method"]
    assert independent["final"]["top1_batch1"] == independent["final"]["last"]["eval_top1"]


def test_the_report_shows_the_released_weights_table_and_keeps_eval_only_runs_out_of_the_paper_tables(evaluated):
    report = (evaluated["root"] / "tables" / "weights" / "report.md").read_text()
    released = report.split("## Released weights vs paper")[1]
    assert released.count(f"| {MODEL} ") == 2 and "(b=32)" in released and "binomial" in released
    before = report.split("## Released weights vs paper")[0]  # the paper tables and the trained runs' table
    assert MODEL not in before and "## Runs outside the paper's tables" not in before  # no trained run: not shown
    page = (evaluated["root"] / "leaderboard" / "index.html").read_text()
    assert "Released weights vs paper" in page and "Implied firing rate" in page


def test_an_eval_only_run_records_its_predictions_and_verifies_from_its_weights_file(evaluated, capsys):
    from harness.engine.predictions import read_predictions

    run = _runs(evaluated["root"])["coupled.pth"]
    predictions, meta = read_predictions(run["dir"])
    assert len(predictions) == 96 and (meta["eval_batch"], meta["split"]) == (32, "test")
    assert meta["weights_sha256"] == run["final"]["weights"]["sha256"]
    capsys.readouterr()
    assert main(["verify", str(run["dir"]), "--results-dir", str(evaluated["root"]), "--images", "50"]) == 0
    assert "verified: 64/64 predictions identical (exact mode" in capsys.readouterr().out


def test_an_eval_only_run_bundled_without_its_weights_verifies_with_weights_given(evaluated, tmp_path, capsys):
    run = _runs(evaluated["root"])["coupled.pth"]
    bundle, other_site = tmp_path / "b.tar.gz", tmp_path / "other"
    assert main(["export", run["dir"].name, "--results-dir", str(evaluated["root"]), "--out", str(bundle)]) == 0
    assert main(["import", str(bundle), "--results-dir", str(other_site)]) == 0
    capsys.readouterr()
    assert main(["verify", run["dir"].name, "--results-dir", str(other_site)]) == 2  # no weights at this site
    assert "--weights FILE" in capsys.readouterr().err
    wrong = evaluated["base"] / "elsewhere" / "independent.pth"  # the other run's file: not this run's SHA-256
    assert main(["verify", run["dir"].name, "--results-dir", str(other_site), "--weights", str(wrong)]) == 2
    assert "not the weights that gave its predictions" in capsys.readouterr().err
    weights = evaluated["data"] / "ckpt" / "coupled.pth"
    assert main(["verify", run["dir"].name, "--results-dir", str(other_site), "--weights", str(weights),
                 "--images", "32"]) == 0
    assert "verified: 32/32" in capsys.readouterr().out
    assert (other_site / "imported" / "local" / run["dir"].name / "verification.json").is_file()


def test_mlflow_holds_the_eval_only_metrics_and_the_weights_hash(evaluated):
    from harness.tracking import default_uri, runs_frame

    frame = runs_frame(default_uri(evaluated["root"]), suite="weights")
    assert len(frame) == 2 and frame["weights_sha256"].str.fullmatch("[0-9a-f]{64}").all()
    assert frame["top1_batch1"].notna().all() and (frame["eval_images"] == 96).all()


def test_a_rerun_skips_finished_eval_only_runs(evaluated, capsys):
    finals = {p: p.stat().st_mtime_ns for p in (evaluated["root"] / "runs").glob("*/final.json")}
    code = main(["run", str(evaluated["suite"]), "--results-dir", str(evaluated["root"]), "--data-root",
                 str(evaluated["data"]), "--no-report"])
    assert code == 0 and "2 already finished" in capsys.readouterr().out
    assert finals == {p: p.stat().st_mtime_ns for p in (evaluated["root"] / "runs").glob("*/final.json")}


def _run_ids(suite: Path, data: Path) -> list[str]:
    from harness.suite import expand, load_suite

    return [spec.run_id for spec in expand(load_suite(suite), data_root=data)]


def test_changing_the_weights_file_changes_the_run_id(tmp_path):
    data = tmp_path / "data"
    official_checkpoint(data / "w.pth", seed=0)
    suite = tmp_path / "s.yaml"
    suite.write_text(suite_text(entry("w.pth")))
    before = _run_ids(suite, data)
    assert _run_ids(suite, data) == before
    official_checkpoint(data / "w.pth", seed=1)
    assert _run_ids(suite, data) != before


def test_the_hash_is_reused_from_the_sidecar_while_size_and_mtime_match(tmp_path):
    from harness.weights.locate import file_sha256

    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    assert file_sha256(path) == hashlib.sha256(b"weights").hexdigest()
    sidecar = tmp_path / "w.bin.sha256"
    recorded = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**recorded, "sha256": "a" * 64}))
    assert file_sha256(path) == "a" * 64  # read, not recomputed
    os.utime(path, ns=(recorded["mtime_ns"] + 10**9, recorded["mtime_ns"] + 10**9))
    assert file_sha256(path) == hashlib.sha256(b"weights").hexdigest()


def test_a_sidecar_in_another_format_is_left_as_it_is(tmp_path):
    from harness.weights.locate import file_sha256

    path, sidecar = tmp_path / "w.bin", tmp_path / "w.bin.sha256"
    path.write_bytes(b"weights")
    sidecar.write_text(f"{'b' * 64}  w.bin\n")  # sha256sum's format: no size or mtime to trust it by
    assert file_sha256(path) == hashlib.sha256(b"weights").hexdigest()
    assert sidecar.read_text() == f"{'b' * 64}  w.bin\n"


def test_the_released_suite_lists_every_catalog_entry_and_validates_with_its_file_missing(tmp_path, monkeypatch,
                                                                                       capsys):
    suite = Path(__file__).resolve().parents[2] / "suites" / "released.yaml"
    monkeypatch.setenv("SPIKEBENCH_WEIGHTS_CATALOG", str(write_catalog(tmp_path / "catalog.yaml")))
    assert main(["validate", str(suite), "--data-root", str(tmp_path / "data")]) == 2  # missing files: exit 2
    out = capsys.readouterr().out
    assert "1 runs; the suite is valid, but what they need is missing" in out
    assert f"{MODEL} cifar10 T=4" in out and "eval-only weights=released" in out
    expected = tmp_path / "data" / "weights" / MODEL / "released.pth"
    assert f"expected {expected}; get it from https://github.com/zhouchenlin2096/QKFormer" in out
    assert f"weights fetch {MODEL} --data-root {tmp_path / 'data'}`" in out  # the same data root the run reads


def test_the_released_suite_validates_with_the_packaged_catalog(capsys):
    suite = Path(__file__).resolve().parents[2] / "suites" / "released.yaml"
    assert main(["validate", str(suite)]) == 0
    assert "valid," in capsys.readouterr().out


def _one_line_refusal(capsys, argv: list[str], *fragments: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture
def released_setup(tmp_path, monkeypatch):
    """A data root, a released suite on digits for MODEL, and a catalog (pinning no hash) named by the environment."""
    monkeypatch.setenv("SPIKEBENCH_WEIGHTS_CATALOG", str(write_catalog(tmp_path / "catalog.yaml")))
    suite = tmp_path / "s.yaml"
    suite.write_text(suite_text(entry("released")))
    data = tmp_path / "data"
    return {"suite": suite, "data": data, "stored": data / "weights" / MODEL / "released.pth", "tmp": tmp_path}


def test_run_refuses_a_missing_released_file_naming_the_source_and_the_path(released_setup, capsys):
    s = released_setup
    results = s["tmp"] / "results"
    _one_line_refusal(capsys, ["run", str(s["suite"]), "--data-root", str(s["data"]), "--results-dir", str(results)],
                      "https://github.com/zhouchenlin2096/QKFormer", str(s["stored"]))
    assert not (results / "runs").exists()


def test_a_file_that_does_not_match_the_catalogs_sha256_is_refused(released_setup, capsys, monkeypatch):
    s = released_setup
    official_checkpoint(s["stored"])
    monkeypatch.setenv("SPIKEBENCH_WEIGHTS_CATALOG", str(write_catalog(s["tmp"] / "pinned.yaml", "0" * 64)))
    _one_line_refusal(capsys, ["validate", str(s["suite"]), "--data-root", str(s["data"])],
                      "field runs.0.weights", "differs from the catalog's " + "0" * 64)


def test_a_truncated_file_is_refused(released_setup, capsys):
    s = released_setup
    official_checkpoint(s["stored"])
    s["stored"].write_bytes(s["stored"].read_bytes()[:5000])
    _one_line_refusal(capsys, ["validate", str(s["suite"]), "--data-root", str(s["data"])],
                      str(s["stored"]), "not a readable")


def test_a_file_of_another_configuration_names_the_first_mismatching_tensor(released_setup, capsys):
    s = released_setup
    state = official_checkpoint(s["stored"])
    state["head.weight"], state["head.bias"] = torch.zeros(100, 64), torch.zeros(100)  # a CIFAR-100 head
    torch.save({"model": state}, s["stored"])
    _one_line_refusal(capsys, ["run", str(s["suite"]), "--data-root", str(s["data"]), "--results-dir",
                               str(s["tmp"] / "results")], "head.weight", "(100, 64)")


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_a_pickle_carrying_code_is_refused_without_running_it(released_setup, capsys, monkeypatch):
    s = released_setup
    s["stored"].parent.mkdir(parents=True)
    s["stored"].write_bytes(pickle.dumps({"model": _Payload()}))
    monkeypatch.chdir(s["tmp"])
    _one_line_refusal(capsys, ["validate", str(s["suite"]), "--data-root", str(s["data"])], str(s["stored"]))
    assert not (s["tmp"] / "pwned.txt").exists()


def test_a_model_without_a_catalog_entry_is_refused(released_setup, capsys, monkeypatch):
    s = released_setup
    monkeypatch.setenv("SPIKEBENCH_WEIGHTS_CATALOG", str(write_catalog(s["tmp"] / "other.yaml",
                                                                       model="sdt_2_512.cifar10")))
    _one_line_refusal(capsys, ["validate", str(s["suite"])], "field runs.0.weights",
                      f"{MODEL}: no released weights in the catalog")


@pytest.mark.parametrize("weights, make, fragment", [
    ("../outside.pth", None, "may not contain '..'"),
    ("a-directory", "dir", "not a regular file"),
    ("link.pth", "link", "not a regular file"),
])
def test_paths_that_escape_or_are_not_files_are_refused(tmp_path, capsys, weights, make, fragment):
    data = tmp_path / "data"
    data.mkdir()
    if make == "dir":
        (data / weights).mkdir()
    elif make == "link":
        official_checkpoint(tmp_path / "target.pth")
        (data / weights).symlink_to(tmp_path / "target.pth")
    suite = tmp_path / "s.yaml"
    suite.write_text(suite_text(entry(weights)))
    _one_line_refusal(capsys, ["validate", str(suite), "--data-root", str(data)], "field runs.0.weights", fragment)


def _official(model, images, predictions_changed: int):
    """An official pass of ``model`` over ``images`` whose recorded predictions differ from the model's own on the
    first ``predictions_changed`` images (as a batch-coupled evaluation would make them)."""
    from harness.engine.eval_only import _OfficialPass

    with torch.no_grad():
        logits = torch.cat([model(x.unsqueeze(0)) for x, _ in images])
    predictions = logits.argmax(1)
    predictions[:predictions_changed] = (predictions[:predictions_changed] + 1) % logits.shape[1]
    return _OfficialPass(None, {}, 50.0, 90.0, 1.0, 1.0, predictions, {i: logits[i] for i in range(len(images))})


@pytest.mark.parametrize("changed, evaluated_images", [(0, 64), (3, 200)])
def test_a_batch_independent_model_whose_check_finds_a_changed_prediction_is_evaluated_whole_at_batch_1(
        changed, evaluated_images):
    from harness.engine.eval_only import _batch1, _check_indices

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5)).eval()
    images = torch.utils.data.TensorDataset(torch.randn(200, 3, 4), torch.randint(0, 5, (200,)))
    check = sorted(set(_check_indices(200, False, 0)) | set(range(changed)))
    result = _batch1(model, images, _official(model, images, changed), check, False, torch.device("cpu"))
    assert result["images"] == evaluated_images
    assert ("changed prediction" in result["method"]) == bool(changed)
    if not changed:
        assert result["top1"] == 50.0 and result["max_logit_diff"] == pytest.approx(0.0, abs=1e-6)


def test_status_reads_eval_only_runs_under_their_data_root(evaluated, capsys):
    assert main(["status", str(evaluated["suite"]), "--results-dir", str(evaluated["root"]), "--data-root",
                 str(evaluated["data"])]) == 0
    out = capsys.readouterr().out
    assert out.count("finished ") == 2 and "weights: 2 finished" in out


def test_a_released_run_is_built_with_the_catalog_model_args(tmp_path, monkeypatch):
    """SDT v2's released 55M checkpoint carries a distillation head: the catalog's ``model_args: {kd: true}`` reaches
    the run's model overrides (the entry's own overrides win), so the file fits the model the run builds."""
    from harness.suite import expand, load_suite

    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(textwrap.dedent("""\
        entries:
          - model: sdtv2_10_768.in1k
            source: https://github.com/BICLab/Spike-Driven-Transformer-V2
            url: null
            file: 55M_kd.pth
            format: official
            model_args: {kd: true}
            checked: written by the test
        """))
    monkeypatch.setenv("SPIKEBENCH_WEIGHTS_CATALOG", str(catalog))
    suite = tmp_path / "s.yaml"
    suite.write_text("released: all\nruns:\n  - {model: sdtv2_10_768.in1k, dataset: imagenet, weights: released, "
                     "overrides: {kd: false}}\n")
    explicit, released = expand(load_suite(suite), data_root=tmp_path / "data")  # runs come before released
    assert released.overrides == {"kd": True} and explicit.overrides == {"kd": False}
