"""What the quick commands and a digits worker import: none of the heavy libraries they do not use (each costs
seconds per process; the times are in benchmarks/RESULTS.md, "Start-up", measured by benchmarks/startup.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.runs import prepare
from harness.suite import Budget, expand, load_suite
from benchmark_scripts import load_script

REPO = Path(__file__).resolve().parents[2]
# never needed by a command that trains, measures or checks a digits run
UNUSED_BY_A_DIGITS_RUN = {"timm", "sklearn", "scipy", "pandas", "mlflow", "matplotlib", "spikingjelly"}
# what only training needs (the digits pipeline uses torchvision; the op counter torch's flop counter, hence triton)
TRAINING_ONLY = {"torchvision", "triton", "neurobench", "snntorch", "torch._dynamo"}

REPORT_MODULES = "print('MODULES=' + json.dumps(sorted(sys.modules)))"


def _modules(code: str, cache: Path) -> set[str]:
    """The modules a fresh interpreter holds after running ``code`` (which must not exit)."""
    env = {**os.environ, "SPIKEBENCH_CACHE": str(cache), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", f"import json, sys\n{code}\n{REPORT_MODULES}"], capture_output=True,
                         text=True, env=env, cwd=REPO, check=True).stdout
    return set(json.loads(out.rsplit("MODULES=", 1)[1]))


def _command(argv: list[str]) -> str:
    return (f"from harness.cli import main\ntry:\n    code = main({argv!r})\nexcept SystemExit as stop:\n"
            f"    code = stop.code\nassert code == 0, code")


def _top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules} | {m for m in modules if m == "torch._dynamo"}


def test_help_imports_nothing_heavy(tmp_path):
    loaded = _top_level(_modules(_command(["--help"]), tmp_path))
    assert not loaded & (UNUSED_BY_A_DIGITS_RUN | TRAINING_ONLY | {"torch", "zoo", "pydantic", "yaml"})


def test_validate_imports_no_training_library_once_timms_model_names_are_cached(tmp_path):
    validate = _command(["validate", "suites/table4.yaml"])  # its distillation runs name a timm teacher
    first = _top_level(_modules(validate, tmp_path))
    assert "timm" in first, "the first check lists timm's models"
    assert (tmp_path / "timm-models.json").is_file()
    loaded = _top_level(_modules(validate, tmp_path))
    assert "torch" in loaded and not loaded & (UNUSED_BY_A_DIGITS_RUN | TRAINING_ONLY)


def test_a_digits_worker_imports_only_what_its_run_uses(tmp_path):
    suite = load_suite(REPO / "suites" / "smoke.yaml")
    spec = next(s for s in expand(suite, Budget(epochs=1, limit_batches=1, subset=32, energy_images=8))
                if s.model == "spikformer_4_384.cifar10")
    run_dir = prepare(tmp_path / "results", spec)
    worker = f"from harness.launch.worker import main\nassert main([{str(run_dir)!r}]) == 0"
    loaded = _top_level(_modules(worker, tmp_path / "cache"))
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
    assert not loaded & UNUSED_BY_A_DIGITS_RUN, "timm, scikit-learn, scipy, pandas, MLflow, ... in a digits worker"


def test_status_imports_no_torchvision_timm_or_mlflow(tmp_path):
    """``status`` of finished runs (the stale check included) reads run files and this checkout's code only."""
    _, every, results = load_script("scale").generate(tmp_path / "scale", 4, 1)
    status = _command(["status", str(every), "--results-dir", str(results)])
    loaded = _top_level(_modules(status, tmp_path / "cache"))
    assert "zoo" in loaded and not loaded & {"torchvision", "timm", "mlflow"}
