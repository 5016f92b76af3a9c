"""benchmarks/scale.py: the synthetic runs are real finished runs to every reader, and the benchmark runs end to end."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from benchmark_scripts import load_script

from harness.engine.predictions import read_predictions
from harness.runs import RunRecord
from harness.suite import expand, load_suite
from harness.tracking import check_record, final_metrics

REPO = Path(__file__).parents[2]


def _scale():
    """``benchmarks/scale.py``, which writes synthetic finished runs in the real format."""
    return load_script("scale")


def test_the_plan_has_exactly_n_runs_of_real_models_three_seeds_each_over_the_suites():
    planned = _scale().plan(101, 3).suites
    entries = [e for runs in planned.values() for e in runs]
    assert len(entries) == 101 and sorted(planned) == ["site0", "site1", "site2"]
    configs = Counter(json.dumps({k: v for k, v in e.items() if k != "seed"}, sort_keys=True) for e in entries)
    assert max(configs.values()) == 3 and len(configs) == 34  # the last configuration has 2 seeds
    import zoo

    assert all(e["dataset"] == zoo.model_card(e["model"]).dataset for e in entries)


def test_written_runs_read_as_finished_current_runs_with_every_artifact(tmp_path):
    scale = _scale()
    suites, every, results = scale.generate(tmp_path, 100, 2)
    specs = expand(load_suite(every))
    assert len(specs) == 100 and len(suites) == 2
    states = Counter()
    for spec in specs:
        record = RunRecord(results / "runs" / spec.run_id)
        check_record(record)
        states[record.state] += 1
        assert not record.stale, "the runs carry this checkout's code fingerprint"
        if record.state == "finished":
            metrics = final_metrics(record.final)
            assert {"best_top1", "energy_mj", "ops_energy_mj", "firing_rate", "footprint_bytes"} <= set(metrics)
            assert len(record.epochs) == 3 and read_predictions(record.dir)[0].shape == (100,)
            assert {"energy.json", "firing.json", "firing.md"} <= {p.name for p in record.dir.iterdir()}
    assert states == {"finished": 96, "failed": 3, "diverged": 1}


@pytest.mark.slow
def test_the_benchmark_runs_end_to_end(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "scale.py"), "--runs", "20", "--suites", "2",
                           "--keep", str(tmp_path), "--json"], capture_output=True, text=True, cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["runs"] == 20 and figures["page_mb"] > 0
    assert figures["status_line"].startswith("all: ") and "20 unchanged" in figures["collect_unchanged_line"]
    assert all(figures[key] > 0 for key in ("status_s", "report_s", "leaderboard_s", "collect_unchanged_s"))
    assert figures["status_first_line"] == figures["status_line"], "status with nothing cached says the same"
    assert "20 logged" in figures["collect_new_line"] and "avx512_bf16" in figures["cpu"]
    assert "| status |" in done.stdout and "| collect, nothing new |" in done.stdout
