"""What ``collect`` logs for a run directory, exactly: its tags, params (fast mode's choice included), metrics with
their steps and artifacts; in ``log_batch`` calls within MLflow's limits; each of the run's files read once."""

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from benchmark_scripts import load_script

from harness.atomicfile import atomic_write_text
from harness.collect_index import index_path
from harness.engine.numerics import FastChoice
from harness.suite import expand, load_suite
from harness.tracking import (ARTIFACTS, BATCH_ENTITIES, BATCH_METRICS, BATCH_PARAMS, BATCH_TAGS, TAG, RunContent,
                              batches, collect, default_uri, final_metrics, flatten_params, log_run_dir)

REPO = Path(__file__).parents[2]
FAST = FastChoice(case="native-bf16", precision="bf16", channels_last=True, compile=False, lif="fused",
                  reason="the CPU has avx512_bf16")


def _scale():
    """``benchmarks/scale.py``, which writes synthetic finished runs in the real format."""
    return load_script("scale")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Two finished runs in the real format, not collected yet."""
    base = tmp_path_factory.mktemp("content")
    suite = base / "two.yaml"
    suite.write_text("name: two\nruns:\n  - {model: sdt_2_512.cifar10, dataset: cifar10, seed: 0}\n"
                     "  - {model: spikformer_4_384.cifar10, dataset: cifar10, seed: 1}\n")
    writer = _scale().RunWriter(base / "results")
    directories = [writer.write(spec, index) for index, spec in enumerate(expand(load_suite(suite)))]
    return base / "results", directories


@pytest.fixture
def results(written, tmp_path):
    root, directories = written
    shutil.copytree(root, tmp_path / "results")
    return tmp_path / "results", [tmp_path / "results" / "runs" / d.name for d in directories]


def _logged(uri: str, run_id: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run, = client.search_runs([client.get_experiment_by_name("spikebench/two").experiment_id],
                              filter_string=f"tags.`{TAG}run_id` = '{run_id}'")
    return client, run


def _expected_metrics(directory: Path) -> set[tuple[str, float, int]]:
    """(name, value, step) of every metric the run's files hold: each epoch's numbers at its epoch, the final
    numbers at step 0 (MLflow keeps one point of a name, value and step logged twice at one time)."""
    expected = set()
    for line in (directory / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        expected.update((k, float(v), row["epoch"]) for k, v in row.items() if k not in ("epoch", "step"))
    final = json.loads((directory / "final.json").read_text())
    expected.update((k, v, 0) for k, v in final_metrics(final).items())
    return expected


def test_a_logged_run_holds_exactly_its_directorys_tags_params_metrics_and_artifacts(results):
    root, (directory, _) = results
    uri = default_uri(root)
    assert collect(root, uri)["logged"] == 2
    spec = json.loads((directory / "spec.json").read_text())
    config = json.loads((directory / "config.json").read_text())
    client, run = _logged(uri, directory.name)
    assert run.info.status == "FINISHED"
    tags = {k.removeprefix(TAG): v for k, v in run.data.tags.items() if k.startswith(TAG)}
    assert set(tags) == {"run_id", "suite", "family", "model", "dataset", "T", "seed", "variant", "recipe", "state",
                         "git_commit", "torch", "cuda", "host", "device", "slurm_job_id", "command", "content_hash",
                         "batch_dependent", "code_fingerprint", "source", "imported", "verified"}
    assert (tags["run_id"], tags["model"], tags["state"], tags["source"]) == (directory.name, spec["model"],
                                                                               "finished", "local")
    assert tags["content_hash"] == RunContent.read(directory).content_hash
    assert tags["code_fingerprint"] == config["provenance"]["code_fingerprint"]
    params = flatten_params("recipe", config["recipe"], flatten_params("spec", spec, {}))
    assert run.data.params == params and not any(k.startswith("fast.") for k in params)
    logged = [(m.key, m.value, m.step) for key in run.data.metrics
              for m in client.get_metric_history(run.info.run_id, key)]
    assert len(logged) == len(set(logged))
    assert set(logged) == _expected_metrics(directory)
    artifacts = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert artifacts == {name for name in ARTIFACTS if (directory / name).exists()}
    local = Path(client.download_artifacts(run.info.run_id, "final.json"))
    assert local.read_bytes() == (directory / "final.json").read_bytes()


def test_a_fast_run_logs_what_fast_mode_chose_as_params(results):
    root, (fast, exact) = results
    config = json.loads((fast / "config.json").read_text())
    config["resolved"]["fast"] = FAST.settings()
    atomic_write_text(json.dumps(config), fast / "config.json")
    uri = default_uri(root)
    collect(root, uri)
    _, run = _logged(uri, fast.name)
    chosen = {k: v for k, v in run.data.params.items() if k.startswith("fast.")}
    assert chosen == {"fast.case": "native-bf16", "fast.precision": "bf16", "fast.channels_last": "True",
                      "fast.compile": "False", "fast.lif": "fused", "fast.reason": "the CPU has avx512_bf16"}
    _, run = _logged(uri, exact.name)
    assert not any(k.startswith("fast.") for k in run.data.params), "an exact run has no fast-mode params"


def test_batches_keep_order_and_every_limit_of_mlflow():
    from mlflow.utils.validation import MAX_ENTITIES_PER_BATCH, MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

    assert (BATCH_METRICS, BATCH_PARAMS, BATCH_TAGS, BATCH_ENTITIES) == (
        MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH, MAX_ENTITIES_PER_BATCH)
    metrics, params, tags = list(range(2500)), [f"p{i}" for i in range(250)], [f"t{i}" for i in range(150)]
    chunks = list(batches(metrics, params, tags))
    for m, p, t in chunks:
        assert len(m) <= BATCH_METRICS and len(p) <= BATCH_PARAMS and len(t) <= BATCH_TAGS
        assert len(m) + len(p) + len(t) <= BATCH_ENTITIES
    assert [x for c in chunks for x in c[0]] == metrics and [x for c in chunks for x in c[1]] == params
    assert [x for c in chunks for x in c[2]] == tags and chunks[-1][2][-1] == "t149"
    assert len(chunks) == 6  # 2500 metrics in 3, 250 params in 3 of 100, 150 tags in 2: packed, not one kind a call
    assert list(batches([1], [], ["hash"])) == [([1], [], ["hash"])]


def test_a_run_beyond_one_batch_is_logged_whole(results):
    """A long training (2,400 epoch metrics, more than MLflow takes in one call) is logged in several batches."""
    root, (directory, _) = results
    rows = [{"epoch": e, "step": e, "train_loss": 1.0 / (e + 1), "eval_top1": float(e % 100), "lr": 1e-3}
            for e in range(800)]
    atomic_write_text("".join(json.dumps(row) + "\n" for row in rows), directory / "metrics.jsonl")
    uri = default_uri(root)
    assert log_run_dir(directory, uri).outcome == "logged"
    client, run = _logged(uri, directory.name)
    assert [m.value for m in client.get_metric_history(run.info.run_id, "train_loss")] == [r["train_loss"]
                                                                                           for r in rows]
    assert run.info.status == "FINISHED" and run.data.tags[TAG + "content_hash"]


def test_collecting_a_new_run_reads_each_of_its_files_once(results, monkeypatch):
    root, (directory, _) = results
    reads = Counter()
    for name in ("read_text", "read_bytes"):
        original = getattr(Path, name)

        def spy(self, *args, _original=original, **kwargs):
            if self.parent == directory:
                reads[self.name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Path, name, spy)
    uri = default_uri(root)
    collect(root, uri, run_ids={directory.name})
    assert reads and max(reads.values()) == 1, reads
    index = json.loads(index_path(root, uri, None).read_text())
    assert index["runs"][f"runs/{directory.name}"]["hash"] == RunContent.read(directory).content_hash
