"""Two CPU processes (gloo) launched with SLURM-style variables train one run through DDP."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import engine_nets
from harness.engine import TrainSpec

HERE = Path(__file__).parent
CHILD = (
    "import sys, torch; torch.set_num_threads(1); sys.path.insert(0, sys.argv[3]); import engine_nets; "
    "from harness.engine import TrainSpec, train; "
    "print(train(TrainSpec.model_validate_json(sys.argv[1]), sys.argv[2])['status'])"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_ranks(spec: TrainSpec, run_dir: Path) -> None:
    """Train ``spec`` into ``run_dir`` with two gloo ranks started from SLURM-style variables; both must finish."""
    port = 0
    while not 20000 <= port < 40000:
        port = _free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "SLURM_PROCID": str(rank), "SLURM_NTASKS": "2",
               "SLURM_LOCALID": str(rank), "SLURM_JOB_NODELIST": "127.0.0.1", "SLURM_JOB_ID": str(port - 20000)}
        for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            env.pop(key, None)
        procs.append(subprocess.Popen([sys.executable, "-c", CHILD, spec.model_dump_json(), str(run_dir), str(HERE)],
                                      cwd=HERE.parents[2], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
        assert out.strip().endswith("finished")


@pytest.mark.slow
def test_two_rank_ddp_run_from_slurm_variables(tmp_path):
    spec = TrainSpec(model=engine_nets.STATIC, dataset="digits", recipe="digits", epochs=1, train_subset=128,
                     limit_eval_batches=2, overrides={"train.batch_size": 16}, checkpoint_every_steps=2)
    _run_two_ranks(spec, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["resolved"]["world_size"] == 2 and config["resolved"]["effective_batch"] == 32
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["global_step"] == 64 // 16  # each rank sees half of the 128 samples
    assert (tmp_path / "train.log").read_text().count("epoch 0 done") == 1  # rank 1 logs to its own file
    assert "epoch 0 done" in (tmp_path / "train.rank1.log").read_text()
    predictions = json.loads((tmp_path / "predictions.json").read_text())  # both ranks' shares, in order
    assert predictions["world_size"] == 2 and predictions["images"] == final["last"]["eval_images"]


@pytest.mark.slow
def test_ddp_trains_a_kd_model_without_distillation(tmp_path):
    """Without distillation a kd model's distillation head gets no gradient, as in the official code: DDP must
    expect unused parameters (else its second step fails waiting for their reduction)."""
    spec = TrainSpec(model="sdtv3_83m.in1k", dataset="digits", recipe="digits", T=1, epochs=1, train_subset=128,
                     limit_eval_batches=2, model_kwargs={"dims": [8, 16, 32], "depth": 1},
                     overrides={"train.batch_size": 16})
    _run_two_ranks(spec, tmp_path)
    assert json.loads((tmp_path / "final.json").read_text())["global_step"] == 64 // 16
