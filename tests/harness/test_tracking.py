"""MLflow tracking: idempotent collect into sqlite and into a real tracking server; tracking that never costs
a run (parallel processes on a fresh store, duplicates merged, an unreachable server, malformed records)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness.runs import RunRecord, run_dir
from harness.tracking import (TAG, TrackingUnavailable, collect, default_uri, ensure_store, final_metrics,
                              runs_frame)

REPO = Path(__file__).resolve().parents[2]
NOTHING = {"logged": 0, "unchanged": 0, "merged": 0, "skipped": 0, "malformed": 0}


def counts(**changed) -> dict[str, int]:
    return {**NOTHING, **changed}


def _mlflow_runs(uri, suite):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"spikebench/{suite}")
    return client, client.search_runs([experiment.experiment_id])


def test_collect_is_idempotent_and_replaces_changed_runs(tiny_results_copy):
    root = tiny_results_copy["root"]
    uri = default_uri(root)
    good, bad = tiny_results_copy["specs"]
    assert collect(root, uri) == counts(unchanged=2)
    final_path = run_dir(root, good) / "final.json"
    final = json.loads(final_path.read_text())
    final["last"]["eval_top1"] = 12.5
    final_path.write_text(json.dumps(final))
    assert collect(root, uri) == counts(logged=1, unchanged=1)
    client, runs = _mlflow_runs(uri, "tiny")
    assert sorted(r.data.tags["spikebench.run_id"] for r in runs) == sorted([good.run_id, bad.run_id])
    assert runs_frame(uri, "tiny").set_index("run_id").loc[good.run_id, "top1"] == 12.5


def test_a_dry_run_counts_what_collect_would_do_and_writes_nothing(tiny_results_copy, tmp_path):
    root = tiny_results_copy["root"]
    good, _ = tiny_results_copy["specs"]
    fresh = tmp_path / "fresh" / "mlflow.db"
    fresh.parent.mkdir()
    assert collect(root, f"sqlite:///{fresh}", dry_run=True) == counts(logged=2)
    assert list(fresh.parent.iterdir()) == [], "a dry run created the store"
    uri = default_uri(root)
    final_path = run_dir(root, good) / "final.json"
    final_path.write_text(json.dumps({**json.loads(final_path.read_text()), "note": "changed"}))
    logged_before = _run_ids_logged(uri)
    tracking_lock = run_dir(root, good) / "tracking.lock"
    tracking_lock.unlink(missing_ok=True)
    assert collect(root, uri, dry_run=True) == counts(logged=1, unchanged=1)
    assert _run_ids_logged(uri) == logged_before and not tracking_lock.exists()
    assert collect(root, uri) == counts(logged=1, unchanged=1)  # what the dry run said


def test_epoch_history_params_and_failure_reason_are_logged(tiny_suite_results):
    uri = default_uri(tiny_suite_results["root"])
    good, bad = tiny_suite_results["specs"]
    client, runs = _mlflow_runs(uri, "tiny")
    by_id = {r.data.tags["spikebench.run_id"]: r for r in runs}
    history = client.get_metric_history(by_id[good.run_id].info.run_id, "train_loss")
    assert [m.step for m in history] == [0]
    assert by_id[good.run_id].data.params["spec.model"] == "qkformer_4_384.cifar10"
    assert by_id[good.run_id].data.params["recipe.optim.name"] == "adamw"
    assert by_id[bad.run_id].info.status == "FAILED"
    assert "cifar-10-batches-py" in by_id[bad.run_id].data.tags["spikebench.reason"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real ``mlflow server`` on a free loopback port, stopped by its PID at the end."""
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 150
        while True:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            assert time.time() < deadline, "mlflow server did not become healthy"
            time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.mark.mlflow_server
def test_collect_into_a_real_tracking_server(tiny_suite_results, mlflow_server):
    import mlflow

    root = tiny_suite_results["root"]
    assert collect(root, mlflow_server) == counts(logged=2)
    assert collect(root, mlflow_server) == counts(unchanged=2)
    mlflow.set_tracking_uri(mlflow_server)
    frame = mlflow.search_runs(experiment_names=["spikebench/tiny"])
    good, _ = tiny_suite_results["specs"]
    row = frame[frame["tags.spikebench.run_id"] == good.run_id].iloc[0]
    expected = runs_frame(default_uri(root), "tiny").set_index("run_id").loc[good.run_id, "top1"]
    assert row["metrics.top1"] == expected
    client, runs = _mlflow_runs(mlflow_server, "tiny")
    artifacts = {a.path for a in client.list_artifacts(row["run_id"])}
    assert {"spec.json", "final.json", "config.json"} <= artifacts


def _run_ids_logged(uri: str, suite: str = "tiny") -> list[str]:
    client, runs = _mlflow_runs(uri, suite)
    return sorted(r.data.tags[TAG + "run_id"] for r in runs)


COLLECT = "import sys; from harness.tracking import collect; print(collect(sys.argv[1], sys.argv[2]))"


def test_parallel_collects_on_a_fresh_sqlite_store_leave_one_run_per_run_id(tiny_results_copy, tmp_path):
    """Processes that open a fresh sqlite store at once all succeed (it is created and migrated once, under a
    lock: without it they crash in MLflow's migrations) and leave each run id logged exactly once."""
    root = tiny_results_copy["root"]
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes = [subprocess.Popen([sys.executable, "-c", COLLECT, str(root), uri], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0] * 3, [err[-2000:] for _, err in results]
    logged = [eval(out.strip().splitlines()[-1])["logged"] for out, _ in results]
    assert sum(logged) == 2  # each of the two runs logged by exactly one process
    assert _run_ids_logged(uri) == sorted(s.run_id for s in tiny_results_copy["specs"])


def test_collect_merges_duplicates_left_by_older_versions(tiny_results_copy):
    root = tiny_results_copy["root"]
    uri = default_uri(root)
    good, _ = tiny_results_copy["specs"]
    client, runs = _mlflow_runs(uri, "tiny")
    original = next(r for r in runs if r.data.tags[TAG + "run_id"] == good.run_id)
    for content_hash in (original.data.tags[TAG + "content_hash"], "an-older-content-hash"):
        client.create_run(original.info.experiment_id, tags={**original.data.tags, TAG + "content_hash": content_hash})
    assert len(_run_ids_logged(uri)) == 4
    assert collect(root, uri) == counts(merged=1, unchanged=1)
    assert _run_ids_logged(uri) == sorted(s.run_id for s in tiny_results_copy["specs"])
    client, runs = _mlflow_runs(uri, "tiny")
    assert original.info.run_id in {r.info.run_id for r in runs}  # the complete, first-logged copy is kept
    assert collect(root, uri) == counts(unchanged=2)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    return _free_port()


def test_an_unreachable_server_fails_fast_in_one_line():
    uri = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable) as caught:
        ensure_store(uri)
    # MLflow's defaults retry for minutes; bounded retries give up within seconds (a generous bound).
    assert time.monotonic() - started < 60
    assert str(caught.value).startswith(f"tracking store {uri} unavailable (") and "\n" not in str(caught.value)


def test_run_against_an_unreachable_server_costs_one_warning_and_collect_imports_later_once(
        tiny_results_copy, suite_writer, tiny_model_entry, tmp_path):
    """A finished run is neither failed nor held up by a down tracking server: exit 0, one warning line;
    ``collect`` later imports each run exactly once."""
    root = tiny_results_copy["root"]
    suite = suite_writer(tmp_path, "tiny", [tiny_model_entry])  # the finished run of the tiny suite
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    down = f"http://127.0.0.1:{_closed_port()}"
    result = subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--results-dir", str(root),
                             "--tracking-uri", down], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [line for line in result.stderr.strip().splitlines()
                                                  if line.startswith(f"warning: tracking store {down} unavailable")]
    assert len(result.stderr.strip().splitlines()) == 1
    later = f"sqlite:///{tmp_path / 'later' / 'mlflow.db'}"
    assert collect(root, later) == counts(logged=2)
    assert collect(root, later) == counts(unchanged=2)
    assert _run_ids_logged(later) == sorted(s.run_id for s in tiny_results_copy["specs"])


def test_malformed_records_are_skipped_with_one_warning_naming_them(tiny_results_copy, recwarn):
    root = tiny_results_copy["root"]
    uri = default_uri(root)
    good, bad = tiny_results_copy["specs"]
    good_dir, bad_dir = run_dir(root, good), run_dir(root, bad)
    metrics = good_dir / "metrics.jsonl"
    epochs = RunRecord(good_dir).epochs
    metrics.write_text("\n".join([json.dumps(epochs[0]), "{not json", json.dumps({"epoch": "x"}), ""])
                       + '{"epoch": 1, "train_lo')  # a garbage line, a mistyped record, a torn last line
    final = json.loads((good_dir / "final.json").read_text())
    final["best_top1"] = "high"
    (good_dir / "final.json").write_text(json.dumps(final))
    broken = root / "runs" / "0000broken000000"
    shutil.copytree(bad_dir, broken)
    (broken / "final.json").write_text('{"status": "fail')
    assert collect(root, uri) == counts(logged=1, unchanged=1, malformed=1)
    messages = sorted(str(w.message) for w in recwarn)
    assert len(messages) == 4, messages
    assert messages[0].startswith(f"{good_dir / 'final.json'}: best_top1='high' not numbers")
    assert messages[1] == f"{metrics}: a record without an integer epoch ({{'epoch': 'x'}}); skipped"
    assert messages[2] == f"{metrics}: line 2 is not a JSON object; skipped"
    assert messages[3].startswith(f"skipped {broken / 'final.json'}: not valid JSON (JSONDecodeError")
    row = runs_frame(uri, "tiny").set_index("run_id").loc[good.run_id]
    assert row["top1"] == epochs[0]["eval_top1"] and row["best_top1"] != row["best_top1"]  # NaN: left out


def test_collect_command_warns_in_one_line_per_malformed_record(tiny_results_copy):
    root = tiny_results_copy["root"]
    broken = root / "runs" / "0000broken000000"
    shutil.copytree(run_dir(root, tiny_results_copy["specs"][1]), broken)
    (broken / "spec.json").write_bytes(b"\xff\xfe")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "harness", "collect", "--results-dir", str(root)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.splitlines() == [f"warning: skipped {broken / 'spec.json'}: not valid JSON "
                                          f"(UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: "
                                          f"invalid start byte)"]
    assert "2 unchanged" in result.stdout and "1 malformed" in result.stdout


NEW_FINAL = {
    "status": "finished", "message": "trained 3 epochs", "epochs_completed": 3, "best_top1": 61.0, "best_epoch": 1,
    "last": {"epoch": 2, "eval_top1": 60.0, "eval_top5": 90.0, "eval_img_s": 50.0, "eval_images": 359},
    "params": 1234,
    "wall_time_s": 36.0, "eval_batch": 32, "batch_dependent": True,
    "energy": {"images": 1000, "paper": {"energy_mj": 1.5, "first_layer_macs": 2.0e6, "sops": 3.0e7, "firing_rate": 0.2},
               "ops": {"energy_mj": 1.9, "macs": 5.0e6, "acs": 4.0e7, "firing_rate": 0.25}},
    "neurobench": {"footprint_bytes": 4936, "connection_sparsity": 0.0, "activation_sparsity": 0.8,
                   "effective_macs": 2.5e6, "effective_acs": 3.5e7},
}


def test_final_json_fields_become_metrics_and_tags(tiny_results_copy):
    """Energy in both conventions, NeuroBench, best and last epoch, eval batch and its flag, the code
    fingerprint, and a diverged run's reason, from run directories in the shared final.json schema."""
    root = tiny_results_copy["root"]
    good, bad = tiny_results_copy["specs"]
    (run_dir(root, good) / "final.json").write_text(json.dumps(NEW_FINAL))
    config = json.loads((run_dir(root, good) / "config.json").read_text())
    config.setdefault("provenance", {})["code_fingerprint"] = "f00dcafe"
    (run_dir(root, good) / "config.json").write_text(json.dumps(config))
    bad_dir = run_dir(root, bad)
    diverged = {**NEW_FINAL, "status": "diverged", "message": "loss is nan at epoch 2", "energy": None}
    (bad_dir / "final.json").write_text(json.dumps(diverged))
    status = json.loads((bad_dir / "status.json").read_text())
    (bad_dir / "status.json").write_text(json.dumps({**status, "state": "diverged", "reason": None}))
    uri = default_uri(root)
    assert collect(root, uri) == counts(logged=2)
    frame = runs_frame(uri, "tiny").set_index("run_id")
    row = frame.loc[good.run_id]
    expected = {"top1": 60.0, "top5": 90.0, "best_top1": 61.0, "best_epoch": 1.0, "energy_mj": 1.5,
                "first_layer_macs": 2.0e6, "sops": 3.0e7, "firing_rate": 0.2, "ops_energy_mj": 1.9,
                "ops_macs": 5.0e6, "ops_acs": 4.0e7, "ops_firing_rate": 0.25, "energy_images": 1000.0,
                "footprint_bytes": 4936.0, "connection_sparsity": 0.0, "activation_sparsity": 0.8,
                "effective_macs": 2.5e6, "effective_acs": 3.5e7, "eval_batch": 32.0, "eval_images": 359.0,
                "train_device_hours": 0.01}
    assert {k: row[k] for k in expected} == pytest.approx(expected)
    assert (row["batch_dependent"], row["code_fingerprint"]) == ("true", "f00dcafe")
    assert frame.loc[bad.run_id, "state"] == "diverged"
    assert frame.loc[bad.run_id, "reason"] == "loss is nan at epoch 2"


def test_energy_block_without_conventions_is_the_ops_count():
    """A final.json written before the two conventions counted every operation as executed."""
    old = {"energy": {"energy_mj": 3.0, "firing_rate": 0.3, "macs": 1.0, "acs": 2.0, "images": 64}}
    assert final_metrics(old) == {"ops_energy_mj": 3.0, "ops_firing_rate": 0.3, "ops_macs": 1.0, "ops_acs": 2.0,
                                  "energy_images": 64.0}


# A `collect` that SIGKILLs itself the moment it calls one MLflow method (a real kill of a real process on a real
# store: nothing of MLflow is replaced; the method is never reached): "module:Class.method".
KILLED_COLLECT = """
import importlib, os, signal, sys

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

module, _, attribute = sys.argv[1].partition(":")
owner, method = attribute.split(".")
setattr(getattr(importlib.import_module(module), owner), method, killed)
from harness.cli import main
sys.exit(main(sys.argv[2:]))
"""
CLIENT = "mlflow.tracking:MlflowClient."
KILL_POINTS = {"log_batch": CLIENT + "log_batch", "set_terminated": CLIENT + "set_terminated",
               "artifacts": "mlflow.store.artifact.local_artifact_repo:LocalArtifactRepository.log_artifact"}


@pytest.mark.parametrize("point", ["log_batch", *(pytest.param(point, marks=pytest.mark.slow)
                                   for point in ("artifacts", "set_terminated"))])
def test_a_collect_killed_midway_is_repaired_by_the_next(tiny_results_copy, tmp_path, point):
    """SIGKILL after the MLflow run was created (before its params, metrics, content hash, artifacts or end
    status): the cut-off run is left out of reports, and the next ``collect`` replaces it with a complete one."""
    root = tiny_results_copy["root"]
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    good, bad = tiny_results_copy["specs"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    store = ["--results-dir", str(root), "--tracking-uri", uri]
    killed = subprocess.run([sys.executable, "-c", KILLED_COLLECT, KILL_POINTS[point], "collect", *store],
                            env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    client, runs = _mlflow_runs(uri, "tiny")
    assert len(runs) == 1 and runs[0].info.status == "RUNNING"
    with pytest.warns(UserWarning, match=f"MLflow run {runs[0].info.run_id} .* not logged to the end"):
        assert runs_frame(uri, "tiny").empty
    again = subprocess.run([sys.executable, "-m", "harness", "collect", *store], env=env, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0 and "2 logged" in again.stdout, again.stdout + again.stderr[-2000:]
    assert _run_ids_logged(uri) == sorted([good.run_id, bad.run_id])
    frame = runs_frame(uri, "tiny").set_index("run_id")
    assert frame.loc[good.run_id, "top1"] == RunRecord(run_dir(root, good)).epochs[-1]["eval_top1"]
    assert frame.loc[bad.run_id, "state"] == "failed"
    assert collect(root, uri) == counts(unchanged=2)
    page = tmp_path / "board.html"
    board = subprocess.run([sys.executable, "-m", "harness", "leaderboard", *store, "--out", str(page)], env=env,
                           capture_output=True, text=True, timeout=600)
    assert board.returncode == 0 and "not logged to the end" not in board.stderr, board.stderr[-2000:]
    assert good.model in page.read_text() and "no finished run" not in page.read_text()
