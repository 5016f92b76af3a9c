"""MLflow tracking: idempotent collect into sqlite and into a real tracking server."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from harness.runs import run_dir
from harness.tracking import collect, default_uri, runs_frame


def _mlflow_runs(uri, suite):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"spikebench/{suite}")
    return client, client.search_runs([experiment.experiment_id])


def test_collect_is_idempotent_and_replaces_changed_runs(tiny_results_copy):
    root = tiny_results_copy["root"]
    uri = default_uri(root)
    good, bad = tiny_results_copy["specs"]
    assert collect(root, uri) == {"logged": 0, "unchanged": 2, "skipped": 0}
    final_path = run_dir(root, good) / "final.json"
    final = json.loads(final_path.read_text())
    final["last"]["eval_top1"] = 12.5
    final_path.write_text(json.dumps(final))
    assert collect(root, uri) == {"logged": 1, "unchanged": 1, "skipped": 0}
    client, runs = _mlflow_runs(uri, "tiny")
    assert sorted(r.data.tags["spikebench.run_id"] for r in runs) == sorted([good.run_id, bad.run_id])
    assert runs_frame(uri, "tiny").set_index("run_id").loc[good.run_id, "top1"] == 12.5


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
    assert collect(root, mlflow_server) == {"logged": 2, "unchanged": 0, "skipped": 0}
    assert collect(root, mlflow_server) == {"logged": 0, "unchanged": 2, "skipped": 0}
    mlflow.set_tracking_uri(mlflow_server)
    frame = mlflow.search_runs(experiment_names=["spikebench/tiny"])
    good, _ = tiny_suite_results["specs"]
    row = frame[frame["tags.spikebench.run_id"] == good.run_id].iloc[0]
    expected = runs_frame(default_uri(root), "tiny").set_index("run_id").loc[good.run_id, "top1"]
    assert row["metrics.top1"] == expected
    client, runs = _mlflow_runs(mlflow_server, "tiny")
    artifacts = {a.path for a in client.list_artifacts(row["run_id"])}
    assert {"spec.json", "final.json", "config.json"} <= artifacts
