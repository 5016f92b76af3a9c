"""A real one-node SLURM (slurm/local-cluster.sh up): GPU requests, capped arrays, cancel, and a small suite
submitted through harness.launch.slurm that completes, survives a forced preemption, shows in status and MLflow.

Every job a test submits is cancelled (and waited for) at the end if it is still in the queue.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


def _cluster_problem() -> str | None:
    """Why the local cluster cannot run jobs (None: it can)."""
    if shutil.which("sinfo") is None:
        return "sinfo is not on PATH: SLURM is not installed (bash slurm/local-cluster.sh up)"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: slurmctld is not answering (bash slurm/local-cluster.sh up)"
    if states.returncode != 0 or not {"idle", "mixed", "allocated"} & set(states.stdout.split()):
        return f"no usable SLURM node ({(states.stdout + states.stderr).strip()!r}): bash slurm/local-cluster.sh up"
    return None


PROBLEM = _cluster_problem()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(PROBLEM is not None, reason=str(PROBLEM))]

from harness.engine import TIMING_KEYS  # noqa: E402  (after the skip: these imports take seconds)
from harness.launch.slurm import (  # noqa: E402
    LIVE_STATES, REPO_ROOT, STATES, cancel_suite, cluster_partitions, load_profile, slurm_command, slurm_states,
    submit_suite,
)
from harness.runs import RunRecord, run_dir  # noqa: E402
from harness.suite import RunSpec, expand, load_suite  # noqa: E402
from harness.tracking import collect, default_uri, runs_frame  # noqa: E402

LOCAL = REPO_ROOT / "slurm" / "local.yaml"
EPOCHS = 6
SUITE = f"""
    name: slurm_tiny
    budget: {{epochs: {EPOCHS}, limit_batches: 12, subset: 192, energy_images: 0}}
    seeds: [0, 1, 2, 3]
    grid:
      - models: [spikformer_4_384.cifar10]
        datasets: [digits]
        T: [1]
        recipe: spikformer_cifar
        overrides: {{dim: 32, depth: 1, heads: 2}}
        recipe_overrides: {{train.batch_size: 16, optim.warmup_epochs: 0, optim.cooldown_epochs: 0}}
    """


# ------------------------------------------------------------------------------------------- helpers
def sbatch(*args: str) -> str:
    return slurm_command("sbatch", "--parsable", *args).strip().split(";")[0]


def in_queue(job_ids: list[str]) -> list[str]:
    out = slurm_command("squeue", "--me", "-h", "-r", "-o", "%i|%A|%F")
    listed = {part for line in out.splitlines() for part in line.split("|")}
    return [job for job in job_ids if job.split("_")[0] in listed or job in listed]


def wait_until(condition, timeout_s: float, what: str, poll_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def wait_gone(job_ids: list[str], timeout_s: float = 120) -> None:
    wait_until(lambda: not in_queue(job_ids), timeout_s, f"jobs {job_ids} to leave the queue")


def accounting(job_id: str) -> list[dict[str, str]]:
    """Every attempt of a job (oldest first), as sacct reports it."""
    fields = ["JobID", "JobIDRaw", "State", "ExitCode", "AllocTRES", "Start", "End"]
    out = slurm_command("sacct", "-n", "-P", "-X", "-D", "-j", job_id, "-o", ",".join(fields))
    return [dict(zip(fields, line.split("|"))) for line in out.splitlines()]


def final_state(job_id: str) -> str:
    """The job's last accounting state, once accounting has it as ended."""
    def ended():
        rows = accounting(job_id)
        state = rows[-1]["State"].split()[0] if rows else ""
        return state if state not in ("", "PENDING", "RUNNING", "REQUEUED", "COMPLETING") else None
    return wait_until(ended, 60, f"accounting to record the end of job {job_id}")


@pytest.fixture
def jobs():
    """Job ids a test submits; those still queued or running at its end are cancelled and waited for."""
    submitted: list[str] = []
    yield submitted
    left = in_queue(submitted)
    if left:
        subprocess.run(["scancel", *left], check=False)
        wait_gone(left)


# ------------------------------------------------------------------------------------------- the cluster
def test_gpu_requests_get_a_fake_gpu_and_impossible_ones_are_refused(tmp_path, jobs):
    out = tmp_path / "gpu.out"
    jobs.append(sbatch("--gpus-per-node=1", f"--output={out}", "--wrap", "echo CUDA=$CUDA_VISIBLE_DEVICES"))
    assert final_state(jobs[0]) == "COMPLETED"
    assert out.read_text().strip() in ("CUDA=0", "CUDA=1")
    assert "gres/gpu=1" in accounting(jobs[0])[-1]["AllocTRES"]
    refused = subprocess.run(["sbatch", "--gpus-per-node=3", "--wrap", "true"], capture_output=True, text=True)
    assert refused.returncode != 0 and "Requested node configuration is not available" in refused.stderr


def test_array_cap_limits_how_many_tasks_run_at_once(tmp_path, jobs):
    # 4 CPUs: without the %2 cap all three 1-CPU tasks would run together
    stamp = f"{tmp_path}/$SLURM_ARRAY_TASK_ID"
    script = f"date +%s.%N > {stamp}.start; sleep 3; date +%s.%N > {stamp}.end"
    jobs.append(sbatch("--array=0-2%2", "--cpus-per-task=1", "--output=/dev/null", "--wrap", script))
    wait_gone(jobs)
    spans = [(float((tmp_path / f"{i}.start").read_text()), float((tmp_path / f"{i}.end").read_text()))
             for i in range(3)]
    most_at_once = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most_at_once == 2, spans
    too_big = subprocess.run(["sbatch", "--array=0-3", "--wrap", "true"], capture_output=True, text=True)
    assert too_big.returncode != 0, "the local cluster's MaxArraySize is 3, so that submission splits arrays"


def test_cancel_ends_a_running_job(jobs):
    jobs.append(sbatch("--output=/dev/null", "--wrap", "sleep 300"))
    wait_until(lambda: slurm_command("squeue", "-h", "-j", jobs[0], "-o", "%T").strip() == "RUNNING", 60,
               "the job to start")
    slurm_command("scancel", jobs[0])
    wait_gone(jobs, 30)
    assert final_state(jobs[0]) == "CANCELLED"


# ------------------------------------------------------------------------------------------- suites
@pytest.fixture(scope="module")
def suite_specs(tmp_path_factory):
    path = tmp_path_factory.mktemp("suite") / "slurm_tiny.yaml"
    path.write_text(textwrap.dedent(SUITE))
    return expand(load_suite(path))


def with_seed(spec: RunSpec, seed: int) -> RunSpec:
    """The same run with another seed (a new run id)."""
    return RunSpec.model_validate({**spec.model_dump(), "seed": seed})


def _checkpoints(root: Path, spec) -> list[str]:
    return sorted(p.name for p in (run_dir(root, spec) / "checkpoints").glob("ckpt-*.pt"))


@pytest.fixture(scope="module")
def submitted(suite_specs, tmp_path_factory):
    """The suite's four runs submitted to root A and a copy of its first run to root B; B is preempted
    (USR2, as SLURM signals before a time limit) once it wrote its first checkpoint. Waits for all."""
    root_a, root_b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    copy = suite_specs[:1]
    ids_b = submit_suite(copy, LOCAL, root_b)
    ids_a = submit_suite(suite_specs, LOCAL, root_a)
    seen: dict[str, set[str]] = {spec.run_id: set() for spec in suite_specs}
    seen_b: set[str] = set()
    preempted_at: list[str] = []
    deadline = time.monotonic() + 240
    next_look = 0.0
    try:
        while True:  # watch closely for B's first checkpoint, look at the queue once a second
            if not preempted_at and _checkpoints(root_b, copy[0]):
                preempted_at = _checkpoints(root_b, copy[0])
                slurm_command("scancel", "--signal=USR2", ids_b[0])
            if time.monotonic() >= next_look:
                next_look = time.monotonic() + 1.0
                states_a, states_b = slurm_states(root_a, suite_specs), slurm_states(root_b, copy)
                both = [*states_a.values(), *states_b.values()]
                assert {s.state for s in both} <= set(STATES)
                for run_id, state in states_a.items():
                    seen[run_id].add(state.state)
                seen_b.add(states_b[copy[0].run_id].state)
                if not any(s.state in LIVE_STATES for s in both):
                    break
                assert time.monotonic() < deadline, f"suite not done in 240 s: {states_a} {states_b}"
            time.sleep(0.1)
        wait_gone([*ids_a, *ids_b], 60)  # the runs are recorded finished just before their jobs end
        yield dict(root_a=root_a, root_b=root_b, ids_a=ids_a, ids_b=ids_b, seen=seen, seen_b=seen_b,
                   states_a=states_a, states_b=states_b, preempted_at=preempted_at)
    finally:
        cancel_suite(root_a, suite_specs)
        cancel_suite(root_b, copy)
        wait_gone([*ids_a, *ids_b])


def test_a_submitted_suite_completes_with_job_ids_in_its_records(submitted, suite_specs):
    states = submitted["states_a"]
    assert [states[s.run_id].state for s in suite_specs] == ["completed"] * 4
    for spec, job_id in zip(suite_specs, submitted["ids_a"]):
        record = RunRecord(run_dir(submitted["root_a"], spec))
        assert record.final["epochs_completed"] == EPOCHS
        assert record.status["slurm_job_id"] in (job_id, accounting(job_id)[-1]["JobIDRaw"])
        assert states[spec.run_id].job_id == record.status["slurm_job_id"]
        assert "gres/gpu=1" in accounting(job_id)[-1]["AllocTRES"], "each run got one (fake) GPU"
        assert accounting(job_id)[-1]["State"] == "COMPLETED"
    assert all({"queued", "running"} & seen for seen in submitted["seen"].values()), submitted["seen"]


def test_status_shows_queued_then_running_then_completed(submitted, suite_specs):
    seen = submitted["seen"]
    last = suite_specs[-1].run_id  # the fourth run waits for the first array: it was seen queued
    assert {"queued", "completed"} <= seen[last], seen[last]
    assert any("running" in states for states in seen.values())


def test_runs_beyond_max_array_size_go_to_a_second_array_that_waits_for_the_first(submitted):
    ids = submitted["ids_a"]
    first, second = ids[:3], ids[3:]
    assert len({job.split("_")[0] for job in first}) == 1 and all("_" in job for job in first)
    assert len(second) == 1 and second[0].split("_")[0] != first[0].split("_")[0]
    first_ends = [accounting(job)[-1]["End"] for job in first]
    assert accounting(second[0])[-1]["Start"] >= max(first_ends), "afterany dependency on the first array"
    throttle = slurm_command("scontrol", "show", "job", first[0])
    assert "ArrayTaskThrottle=2" in throttle, "the profile's array_parallelism caps the array"


def test_jobs_run_the_code_snapshot_taken_at_submission(submitted, suite_specs):
    status = RunRecord(run_dir(submitted["root_a"], suite_specs[0])).status
    code = Path(status["slurm_submission"]) / "code"
    assert (code / "harness" / "launch" / "slurm.py").read_text() == (REPO_ROOT / "harness/launch/slurm.py").read_text()
    assert f"with the code in {code}" in Path(status["slurm_log"]).read_text()


def test_a_preempted_run_requeues_resumes_and_ends_with_the_same_weights(submitted, suite_specs):
    import torch

    spec = suite_specs[0]
    preempted, reference = run_dir(submitted["root_b"], spec), run_dir(submitted["root_a"], spec)
    assert submitted["preempted_at"] and submitted["preempted_at"][-1] < f"ckpt-e{EPOCHS:04d}", \
        f"preempted after {submitted['preempted_at']}, before the end"
    assert "requeued" in submitted["seen_b"], submitted["seen_b"]
    assert submitted["states_b"][spec.run_id].state == "completed"
    attempts = [row["State"] for row in accounting(submitted["ids_b"][0])]
    assert attempts[0] == "REQUEUED" and attempts[-1] == "COMPLETED", attempts
    assert RunRecord(preempted).status["slurm_requeues"] == 1
    assert f"resumed from {submitted['preempted_at'][-1]}" in (preempted / "train.log").read_text()
    last = f"ckpt-e{EPOCHS:04d}-b000000.pt"
    resumed = torch.load(preempted / "checkpoints" / last, weights_only=True)["model"]
    straight = torch.load(reference / "checkpoints" / last, weights_only=True)["model"]
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight), "resumed weights differ"
    drop = set(TIMING_KEYS)
    epochs = [{k: v for k, v in e.items() if k not in drop} for e in RunRecord(preempted).epochs]
    assert epochs == [{k: v for k, v in e.items() if k not in drop} for e in RunRecord(reference).epochs]


def test_slurm_and_local_launches_give_identical_numbers(submitted, suite_specs, tmp_path):
    from harness.launch.local import run_suite

    spec = suite_specs[0]
    on_slurm = RunRecord(run_dir(submitted["root_a"], spec))
    assert on_slurm.config["provenance"]["threads"]["torch"] == spec.threads == 1, \
        "the run's threads, not the job's CPUs"
    assert run_suite([spec], tmp_path, jobs=2).states == {spec.run_id: "finished"}
    local = RunRecord(run_dir(tmp_path, spec))
    drop = set(TIMING_KEYS)
    assert [{k: v for k, v in e.items() if k not in drop} for e in local.epochs] == \
        [{k: v for k, v in e.items() if k not in drop} for e in on_slurm.epochs]


def test_collected_results_show_in_mlflow_with_their_job_ids(submitted, suite_specs):
    root = submitted["root_a"]
    uri = default_uri(root)
    assert collect(root, uri)["logged"] == 4
    frame = runs_frame(uri, suite="slurm_tiny").set_index("run_id")
    assert sorted(frame.index) == sorted(s.run_id for s in suite_specs)
    for spec in suite_specs:
        assert frame.loc[spec.run_id, "slurm_job_id"] == RunRecord(run_dir(root, spec)).status["slurm_job_id"]
        assert frame.loc[spec.run_id, "state"] == "finished"


def test_killed_and_cancelled_runs_are_failed_with_reasons_and_resubmitted_alone(suite_specs, tmp_path, jobs):
    root = tmp_path / "c"
    spec = with_seed(suite_specs[0], 7)
    others = suite_specs[1:2]  # never submitted here, so not failed: --failed leaves it alone

    def started(job_id: str) -> int:
        """Wait for the job's worker to record the run as running; its PID."""
        jobs.append(job_id)
        wait_until(lambda: RunRecord(run_dir(root, spec)).status["state"] == "running", 120, f"{job_id} to start",
                   poll_s=0.1)
        return RunRecord(run_dir(root, spec)).status["pid"]

    (killed,) = submit_suite([spec], LOCAL, root)
    assert submit_suite([spec], LOCAL, root) == [], "a queued run is not submitted twice"
    os.kill(started(killed), signal.SIGKILL)  # as the OOM killer would: the worker records nothing
    wait_gone([killed], 30)
    state = slurm_states(root, [spec])[spec.run_id]
    assert state.state == "failed" and state.slurm_state == "FAILED", state
    reason = RunRecord(run_dir(root, spec)).status["reason"]
    assert f"SLURM job {killed} FAILED (exit code" in reason and "last log lines" in reason, reason
    assert "with the code in" in reason, "the job log's last lines are part of the reason"

    (cancelled,) = submit_suite([spec, *others], LOCAL, root, failed_only=True)
    assert cancelled != killed
    started(cancelled)
    assert cancel_suite(root, [spec]) == 1
    wait_gone([cancelled], 30)
    state = slurm_states(root, [spec])[spec.run_id]
    assert state.state == "cancelled" and state.slurm_state == "CANCELLED", state
    assert RunRecord(run_dir(root, spec)).state == "failed"
    assert "cancelled (harness cancel)" in RunRecord(run_dir(root, spec)).status["reason"]

    uri = default_uri(root)
    resubmitted = submit_suite([spec, *others], LOCAL, root, failed_only=True, tracking_uri=uri)
    jobs.extend(resubmitted)
    assert len(resubmitted) == 1 and resubmitted[0] not in (killed, cancelled)
    wait_until(lambda: slurm_states(root, [spec])[spec.run_id].state not in LIVE_STATES, 180, "the resubmitted run")
    assert slurm_states(root, [spec])[spec.run_id].state == "completed"
    assert submit_suite([spec], LOCAL, root, failed_only=True) == []
    wait_until(lambda: len(runs_frame(uri)) == 1, 60, "the job to log its run to MLflow")
    assert runs_frame(uri).iloc[0]["run_id"] == spec.run_id, "the job logged straight to MLflow"


def test_a_multi_gpu_run_is_one_job_with_a_ddp_task_per_gpu(suite_specs, tmp_path, jobs):
    profile = tmp_path / "two-gpus.yaml"
    profile.write_text(LOCAL.read_text().replace("gpus_per_run: 1", "gpus_per_run: 2"))
    assert load_profile(profile).layout == (1, 2)
    spec = with_seed(suite_specs[0], 11)
    root = tmp_path / "ddp"
    jobs.extend(submit_suite([spec], profile, root))
    wait_until(lambda: slurm_states(root, [spec])[spec.run_id].state not in LIVE_STATES, 180, "the DDP run")
    assert slurm_states(root, [spec])[spec.run_id].state == "completed"
    job = slurm_command("scontrol", "show", "job", jobs[0])
    assert "NumTasks=2" in job and "gres/gpu=2" in job
    resolved = json.loads((run_dir(root, spec) / "config.json").read_text())["resolved"]
    assert resolved["world_size"] == 2, "both tasks joined one process group"


# ------------------------------------------------------------------------------------------- job pickles
class _Payload:
    """What someone who can write the results directory would put in a job pickle: code run at unpickling."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_submission_files_are_the_owners_alone_and_an_altered_pickle_is_refused(suite_specs, tmp_path, jobs):
    """Two runs as one array, held back by a begin time: the pickle of the second is replaced by one that would
    create a marker file. Once started, the first runs to completion; the second refuses in one log line before
    unpickling anything, so the marker never appears. Everything of the submission is owner-only."""
    import pickle

    profile = tmp_path / "later.yaml"
    profile.write_text(LOCAL.read_text() + "sbatch: {begin: now+600}\n")
    root, marker = tmp_path / "r", tmp_path / "pwned"
    kept, altered = with_seed(suite_specs[0], 21), with_seed(suite_specs[0], 22)
    ids = submit_suite([kept, altered], profile, root)
    jobs.extend(ids)
    submission = Path(RunRecord(run_dir(root, kept)).status["slurm_submission"])
    for path in [submission, *submission.rglob("*")]:
        if not path.is_symlink():
            assert path.stat().st_mode & 0o077 == 0, f"{path} is open to others: {oct(path.stat().st_mode)}"
    target = submission / "logs" / f"{ids[1]}_submitted.pkl"
    target.write_bytes(pickle.dumps(_Payload(marker)))
    for job_id in ids:
        slurm_command("scontrol", "update", f"JobId={job_id}", "StartTime=now")
    wait_until(lambda: all(s.state not in LIVE_STATES for s in slurm_states(root, [kept, altered]).values()), 180,
               "both jobs to end")
    states = slurm_states(root, [kept, altered])
    assert states[kept.run_id].state == "completed", states[kept.run_id]
    assert states[altered.run_id].state == "failed"
    log = Path(RunRecord(run_dir(root, altered)).status["slurm_log"]).read_text().strip().splitlines()
    assert len(log) == 1 and log[0].startswith(f"spikebench: refusing to unpickle {target}: its SHA-256 "), log
    assert "differs from the one recorded at submission" in log[0]
    assert not marker.exists(), "the altered pickle was unpickled"


# ------------------------------------------------------------------------------------------- profiles vs. sinfo
def _submit_cli(tmp_path, profile: Path | str) -> subprocess.CompletedProcess:
    suite = tmp_path / "one.yaml"
    suite.write_text(textwrap.dedent(SUITE).replace("seeds: [0, 1, 2, 3]", "seeds: [0]"))
    return subprocess.run([sys.executable, "-m", "harness", "submit", str(suite), "--cluster", str(profile),
                           "--results-dir", str(tmp_path / "results")], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=300)


def _error_lines(done: subprocess.CompletedProcess) -> list[str]:
    """stderr without MLflow's own INFO lines when it creates a store (silenced elsewhere)."""
    return [line for line in done.stderr.splitlines() if " INFO mlflow." not in line]


@pytest.mark.parametrize("change, expected", [
    (("partition: debug", "partition: gpu"),
     "line 3: field partition: 'gpu' is not a partition of this cluster (sinfo lists: debug)"),
    (("gpus_per_node: 2\ngpus_per_run: 1", "gpus_per_node: 4\ngpus_per_run: 4"),
     "line 4: field gpus_per_node: 4 GPUs, but the nodes of partition 'debug' have at most 2 (sinfo)"),
    (("gpus_per_run: 1", "gpus_per_run: 1\ngpu_type: a100"),
     "line 6: field gpu_type: 'a100' is not a GPU type of partition 'debug' (sinfo lists: none (its GPUs have no "
     "type))"),
], ids=["partition", "gpus-per-node", "gpu-type"])
def test_a_profile_the_cluster_cannot_schedule_is_one_line_naming_its_field(tmp_path, change, expected):
    profile = tmp_path / "p.yaml"
    profile.write_text(LOCAL.read_text().replace(*change))
    done = _submit_cli(tmp_path, profile)
    assert done.returncode == 2 and _error_lines(done) == [f"error: {profile}: {expected}"], done.stderr
    assert not (tmp_path / "results" / "runs").exists(), "nothing is written before the check"


def test_a_shipped_profile_names_its_repository_path(tmp_path):
    done = _submit_cli(tmp_path, "single-gpu")
    assert done.returncode == 2 and _error_lines(done) == [
        "error: slurm/single-gpu.yaml: line 3: field partition: 'gpu' is not a partition of this cluster (sinfo "
        "lists: debug)"], done.stderr


def test_sbatch_refusing_the_job_is_one_line_and_leaves_no_submission(tmp_path):
    profile = tmp_path / "featured.yaml"
    profile.write_text(LOCAL.read_text() + "constraint: nosuchfeature\n")
    done = _submit_cli(tmp_path, profile)
    assert done.returncode == 2, done.stderr
    assert _error_lines(done) == [f"error: sbatch refused the job: Invalid feature specification (cluster profile "
                                  f"featured, {profile})"], done.stderr
    assert not list((tmp_path / "results" / "slurm").glob("*")), "the refused submission's folder is removed"


def test_the_local_partition_is_read_from_sinfo():
    partitions = cluster_partitions()
    assert partitions is not None and set(partitions) == {"debug"}
    debug = partitions["debug"]
    assert debug.default and debug.gpus_per_node == 2 and debug.gpu_types == frozenset()
    assert debug.time_limit == "infinite" and debug.time_limit_s is None
