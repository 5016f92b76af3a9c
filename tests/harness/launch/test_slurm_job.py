"""A SLURM job's checkpoint on USR2, driven through submitit's own checkpoint step (no cluster needed): the job's
pickle stays byte for byte the submitted one (so its recorded SHA-256 still holds after a requeue), and time-limit
requeues are counted against the profile's max_timeouts."""

import pytest
from submitit.core.job_environment import _checkpoint
from submitit.core.utils import DelayedSubmission

from harness.launch.slurm import SlurmRun
from harness.runs import RunRecord, prepare
from harness.suite import expand, load_suite


@pytest.fixture
def job(tmp_path, monkeypatch, suite_writer, tiny_model_entry):
    """A run prepared under a results root and its submitted pickle, in the environment of SLURM job 5."""
    spec, = expand(load_suite(suite_writer(tmp_path, "job", [tiny_model_entry])))
    root, folder = tmp_path / "results", tmp_path / "logs"
    folder.mkdir()
    prepare(root, spec)
    for name, value in {"SUBMITIT_EXECUTOR": "slurm", "SUBMITIT_FOLDER": str(folder), "SLURM_JOB_ID": "5",
                        "SLURM_PROCID": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    return {"spec": spec, "root": root, "pickle": folder / "5_submitted.pkl"}


def _submit(job, max_timeouts: int, usr2_after_s: int | None) -> DelayedSubmission:
    """Dump the job's pickle as a submission does, then load it as the job does."""
    delayed = DelayedSubmission(SlurmRun(job["spec"], job["root"], None, None, max_timeouts, usr2_after_s))
    delayed.set_timeout(15, max_timeouts)
    delayed.dump(job["pickle"])
    return DelayedSubmission.load(job["pickle"])


def _status(job) -> dict:
    return RunRecord(job["root"] / "runs" / job["spec"].run_id).status


def test_a_preempted_job_is_requeued_with_its_submitted_pickle_unchanged(job):
    loaded = _submit(job, max_timeouts=0, usr2_after_s=10**6)  # the USR2 comes long before the time limit's
    submitted = job["pickle"].read_bytes()
    for attempt in (1, 2):
        assert _checkpoint(loaded, job["pickle"], countdown=0) == "", "requeued"
        assert job["pickle"].read_bytes() == submitted
        status = _status(job)
        assert status["state"] == "interrupted" and status["slurm_requeues"] == attempt
        assert status["slurm_timeouts"] == 0


def test_time_limits_beyond_max_timeouts_give_the_run_up_with_the_reason(job):
    loaded = _submit(job, max_timeouts=1, usr2_after_s=0)  # every USR2 is the time limit's
    assert _checkpoint(loaded, job["pickle"], countdown=1) == ""
    assert _status(job)["slurm_timeouts"] == 1 and _status(job)["state"] == "interrupted"
    assert _checkpoint(loaded, job["pickle"], countdown=1) == "checkpoint function returned None"
    status = _status(job)
    assert status["state"] == "failed" and status["slurm_timeouts"] == 2
    assert status["reason"].startswith("hit the time limit 2 times (max_timeouts 1 in the cluster profile)")
