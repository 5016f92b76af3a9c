"""Run a suite on a SLURM cluster through submitit: one job array per submission, preemption-safe.

A cluster profile (``slurm/*.yaml``, :class:`ClusterProfile`) says where and how runs go. ``submit_suite``
freezes a copy of the code, submits every unfinished run as one job array (split into dependent arrays
above the cluster's MaxArraySize) and records each run's job id in its ``status.json``. A job runs
``harness.launch.worker.execute``; on SLURM's USR2 signal (time limit or preemption) submitit calls
:meth:`SlurmRun.checkpoint`, which requeues the job, and the run resumes from its last checkpoint (as it
does when SLURM itself requeues a preempted job). Multi-GPU runs are one job with a task per GPU; the
engine joins them into one DDP process group from the SLURM variables.
``slurm_states`` merges squeue/sacct with the run records; ``cancel_suite`` cancels a suite's jobs.

Before anything is submitted the profile is checked against what ``sinfo`` reports (partition, GPUs per node, GPU
type, time limit), and an sbatch refusal is one line. Whoever can write the submission folder could run code on
the nodes (README, "SLURM threat model"): it is the submitter's alone (0700/0600), and a job refuses to unpickle a
file whose SHA-256 differs from the one recorded in its SLURM comment at submission (``pickle_check``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import submitit
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.configfile import ConfigError, compose, load_yaml, read_text

from harness.runs import DONE_STATES, RunRecord, prepare, run_dir, set_aside_stale, tail_lines, write_status
from harness.suite import RunSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILE_DIR = REPO_ROOT / "slurm"
SNAPSHOT_PACKAGES = ("harness", "zoo")

# what `harness status` shows for a run on SLURM
STATES = ("unsubmitted", "queued", "running", "requeued", "completed", "diverged", "failed", "cancelled")
# a run in a live state is not submitted again
LIVE_STATES = ("queued", "running", "requeued")

_TIME = re.compile(r"^(?:(?P<d>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$")
_MEMORY = re.compile(r"^\d+[KMGT]?$")
# sbatch flags that the profile's own fields or the submission set; `sbatch:` may not repeat them
_MANAGED_FLAGS = {
    "array": "the submission", "output": "the submission", "error": "the submission", "open-mode": "the submission",
    "hold": "the submission", "dependency": "the submission", "signal": "signal_delay_s", "job-name": "the suite",
    "partition": "partition", "account": "account", "qos": "qos", "constraint": "constraint", "time": "time_limit",
    "nodes": "gpus_per_run", "ntasks": "gpus_per_run", "ntasks-per-node": "gpus_per_run",
    "gpus": "gpus_per_run", "gpus-per-node": "gpus_per_run", "gres": "gpus_per_run and gpu_type",
    "cpus-per-task": "cpus_per_gpu", "cpus-per-gpu": "cpus_per_gpu", "mem": "mem_per_gpu",
    "mem-per-gpu": "mem_per_gpu", "chdir": "the submission (code snapshot)",
    "comment": "the submission (the job pickle's SHA-256)",
}
PICKLE_TAG = "spikebench-sha256:"  # a job's SLURM comment: this prefix and its submitted pickle's SHA-256


class SlurmError(RuntimeError):
    """A SLURM command failed; the message holds the command and its error output."""


class ProfileError(ConfigError):
    """A cluster profile is malformed; the message names the file, line and field."""


# ------------------------------------------------------------------------------------------- profiles
class ClusterProfile(BaseModel):
    """Where and how a suite's runs go on one SLURM cluster. One run = one job (``gpus_per_run`` tasks)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    partition: str | None = Field(None, description="None: the cluster's default partition")
    account: str | None = None
    qos: str | None = None
    constraint: str | None = Field(None, description="node features, e.g. 'a100|h100'")
    gpus_per_node: int = Field(ge=0, description="GPUs on one node of the partition")
    gpu_type: str | None = Field(None, description="GRES type, e.g. a100: requests gpu:a100:N")
    gpus_per_run: int = Field(1, ge=0, description="GPUs (= tasks, DDP ranks) of one run; 0: a CPU-only run")
    cpus_per_gpu: int = Field(4, ge=1, description="CPUs of each task (of the one task of a CPU-only run)")
    mem_per_gpu: str = Field("16G", description="memory of each GPU's task, SLURM units (of a CPU-only run)")
    time_limit: str = Field("24:00:00", description="per job: [D-]HH:MM:SS, MM:SS or minutes")
    array_parallelism: int = Field(16, ge=1, description="runs of one submission running at once")
    max_timeouts: int = Field(3, ge=0, description="time-limit requeues before a run is given up")
    signal_delay_s: int = Field(120, ge=10, description="USR2 (checkpoint and requeue) this long before the end")
    setup: list[str] = Field(default_factory=list, description="shell lines before the run, e.g. module load")
    sbatch: dict[str, str | int | bool] = Field(default_factory=dict, description="extra sbatch flags")
    python: str | None = Field(None, description="Python on the nodes; default: this interpreter")

    @field_validator("time_limit", mode="before")
    @classmethod
    def _time(cls, value: Any) -> str:
        text = str(value)
        if not _TIME.match(text):
            raise ValueError(f"expected [D-]HH:MM:SS, HH:MM, MM:SS or minutes, got {text!r}")
        return text

    @field_validator("mem_per_gpu", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> str:
        text = str(value).upper().removesuffix("B")
        if not _MEMORY.match(text):
            raise ValueError(f"expected a SLURM memory size such as 16G or 8000M, got {value!r}")
        return text

    @field_validator("sbatch")
    @classmethod
    def _sbatch(cls, flags: dict[str, Any]) -> dict[str, Any]:
        normalized = {key.lstrip("-").replace("_", "-"): value for key, value in flags.items()}
        for key in normalized:
            if key in _MANAGED_FLAGS:
                raise ValueError(f"--{key} is set by {_MANAGED_FLAGS[key]}, not by extra sbatch flags")
        return normalized

    @model_validator(mode="after")
    def _gpus(self) -> ClusterProfile:
        if self.gpus_per_run and not self.gpus_per_node:
            raise ValueError(f"gpus_per_run is {self.gpus_per_run} but gpus_per_node is 0")
        if self.gpus_per_run > self.gpus_per_node and self.gpus_per_run % self.gpus_per_node:
            raise ValueError(f"gpus_per_run {self.gpus_per_run} spans nodes of {self.gpus_per_node} GPUs: it must be "
                             f"at most {self.gpus_per_node} or a multiple of it")
        if self.gpu_type and not self.gpus_per_run:
            raise ValueError("gpu_type is set but gpus_per_run is 0")
        return self

    @property
    def timeout_min(self) -> int:
        """The time limit in whole minutes (rounded up)."""
        return max(1, math.ceil(duration_s(self.time_limit) / 60))

    @property
    def layout(self) -> tuple[int, int]:
        """(nodes, tasks per node) of one run's job; a task per GPU, one task for a CPU-only run."""
        if self.gpus_per_run == 0:
            return 1, 1
        nodes = max(1, self.gpus_per_run // self.gpus_per_node)
        return nodes, self.gpus_per_run // nodes


def duration_s(text: str) -> int:
    """Seconds of a SLURM duration: [D-]HH[:MM[:SS]], HH:MM:SS, MM:SS or minutes (as ``sbatch --time`` reads it)."""
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"expected [D-]HH:MM:SS, HH:MM, MM:SS or minutes, got {text!r}")
    d, a, b, c = (int(match.group(k)) if match.group(k) else None for k in "dabc")
    if d is not None:  # D-HH[:MM[:SS]]
        return d * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    if c is not None:  # HH:MM:SS
        return a * 3600 + b * 60 + c
    if b is not None:  # MM:SS
        return a * 60 + b
    return a * 60  # minutes


def resolve_profile(name_or_path: str | Path) -> Path:
    """A profile file: the path itself, or ``slurm/<name>.yaml`` in the repository."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = PROFILE_DIR / f"{name_or_path}.yaml"
    if named.is_file():
        return named
    known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
    raise ProfileError(f"cluster profile {str(name_or_path)!r} not found: not a file, and no {named}; "
                       f"profiles in {PROFILE_DIR}: {known}")


def load_profile(name_or_path: str | Path) -> ClusterProfile:
    """Read and validate a cluster profile; every error names the file, line and field."""
    path = resolve_profile(name_or_path)
    return load_yaml(path, ClusterProfile, "cluster profile", ProfileError, defaults={"name": path.stem})


# ------------------------------------------------------------------------------------------- SLURM commands
def slurm_command(*args: str) -> str:
    """Run a SLURM client command and return its output; SlurmError with its stderr when it fails."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise SlurmError(f"{args[0]} not found: SLURM's client commands must be on PATH") from None
    if done.returncode != 0:
        raise SlurmError(f"{shlex.join(args)} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def max_array_size() -> int:
    """The cluster's MaxArraySize (an array's indices must stay below it)."""
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", slurm_command("scontrol", "show", "config"), re.M)
    if match is None:
        raise SlurmError("`scontrol show config` did not report MaxArraySize")
    return int(match.group(1))


def chunks(items: list, size: int) -> list[list]:
    """``items`` in consecutive pieces of at most ``size``."""
    return [items[start:start + size] for start in range(0, len(items), size)]


# ------------------------------------------------------------------------------------------- the cluster's partitions
_GRES_GPU = re.compile(r"gpu(?::([^:,(]+))?:(\d+)")


@dataclass(frozen=True)
class Partition:
    """What ``sinfo`` reports about one partition: whether it is the default, its nodes' GPUs, its time limit."""

    name: str
    default: bool
    gpus_per_node: int  # the most GPUs one of its nodes has
    gpu_types: frozenset[str]
    time_limit: str  # as sinfo prints it: "infinite", "1-00:00:00", "30:00"

    @property
    def time_limit_s(self) -> int | None:
        """The time limit in seconds; None when there is none."""
        try:
            return duration_s(self.time_limit)
        except ValueError:  # infinite, UNLIMITED, n/a
            return None


def cluster_partitions() -> dict[str, Partition] | None:
    """The cluster's partitions as ``sinfo`` reports them, or None when SLURM cannot be reached from here."""
    if shutil.which("sinfo") is None:
        return None
    try:
        return partitions_from_sinfo(slurm_command("sinfo", "-h", "-o", "%P|%G|%l"))
    except SlurmError:
        return None


def partitions_from_sinfo(out: str) -> dict[str, Partition]:
    """Partitions from ``sinfo -h -o '%P|%G|%l'`` lines (one per partition and node configuration)."""
    partitions: dict[str, Partition] = {}
    for line in out.splitlines():
        shown, gres, limit = line.split("|", 2)
        name = shown.rstrip("*")
        gpus = _GRES_GPU.findall(gres)
        known = partitions.get(name)
        partitions[name] = Partition(
            name, shown.endswith("*") or bool(known and known.default),
            max([int(count) for _, count in gpus] + [known.gpus_per_node if known else 0]),
            frozenset({kind for kind, _ in gpus if kind} | (known.gpu_types if known else set())), limit)
    return partitions


def check_fits_cluster(profile: ClusterProfile, path: Path, partitions: dict[str, Partition]) -> None:
    """Refuse a profile the cluster cannot schedule (its partition, GPUs per node, GPU type, time limit): a
    ``ProfileError`` naming the profile file, the field and what ``sinfo`` reports."""
    listed = ", ".join(sorted(partitions)) or "none"
    default = next((p for p in partitions.values() if p.default), None)
    if profile.partition is not None and profile.partition not in partitions:
        raise ProfileError(f"{_field_at(path, 'partition')}: {profile.partition!r} is not a partition of this "
                           f"cluster (sinfo lists: {listed})")
    partition = partitions[profile.partition] if profile.partition else default
    if partition is None:
        raise ProfileError(f"{_field_at(path, 'partition')}: the cluster has no default partition; name one of: "
                           f"{listed}")
    _, tasks_per_node = profile.layout
    if profile.gpus_per_run and tasks_per_node > partition.gpus_per_node:
        field = "gpus_per_run" if profile.gpus_per_node <= partition.gpus_per_node else "gpus_per_node"
        raise ProfileError(f"{_field_at(path, field)}: {getattr(profile, field)} GPUs, but the nodes of partition "
                           f"{partition.name!r} have at most {partition.gpus_per_node} (sinfo)")
    if profile.gpu_type and profile.gpu_type not in partition.gpu_types:
        types = ", ".join(sorted(partition.gpu_types)) or "none (its GPUs have no type)"
        raise ProfileError(f"{_field_at(path, 'gpu_type')}: {profile.gpu_type!r} is not a GPU type of partition "
                           f"{partition.name!r} (sinfo lists: {types})")
    limit = partition.time_limit_s
    if limit is not None and profile.timeout_min * 60 > limit:
        raise ProfileError(f"{_field_at(path, 'time_limit')}: {profile.time_limit} is longer than partition "
                           f"{partition.name!r} allows ({partition.time_limit}, sinfo)")


def _field_at(path: Path, field: str) -> str:
    """``<profile file>: line N: field F`` (``field F (not set)`` for a field the file leaves at its default)."""
    tree = compose(read_text(path, "cluster profile", ProfileError), path, ProfileError)
    node = next((value for key, value in tree.value if key.value == field), None) \
        if isinstance(tree, yaml.MappingNode) else None
    if node is None:
        return f"{_shown_path(path)}: field {field} (not set)"
    return f"{_shown_path(path)}: line {node.start_mark.line + 1}: field {field}"


def _shown_path(path: Path) -> str:
    """A profile's path as the user knows it: relative to the repository when it ships with it."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else str(path)


@dataclass(frozen=True)
class JobState:
    """What SLURM says about one job (array element): its ids, state, exit code, reason, attempts."""

    job_id: str  # array form, 123_4, or plain 123
    raw_id: str  # the element's own job id
    state: str  # SLURM's state name: PENDING, RUNNING, COMPLETED, CANCELLED, ...
    reason: str = ""
    exit_code: str = ""
    requeued: bool = False  # an earlier attempt was requeued or preempted


def queue_states() -> dict[str, JobState]:
    """This user's jobs in the queue, one entry per array element, keyed by both id forms."""
    out = slurm_command("squeue", "--me", "-h", "-r", "-o", "%i|%A|%T|%r")
    jobs: dict[str, JobState] = {}
    for line in out.splitlines():
        job_id, raw_id, state, reason = line.split("|", 3)
        jobs[job_id] = JobState(job_id, raw_id, state, reason)
        if raw_id != job_id.split("_")[0]:  # pending elements of an array all show the array's own id
            jobs[raw_id] = jobs[job_id]
    return jobs


def accounting_states(job_ids: list[str]) -> dict[str, JobState]:
    """The last accounting record of each job (with whether it was requeued), keyed by both id forms;
    empty when accounting is disabled on this cluster."""
    if not job_ids:
        return {}
    try:
        out = slurm_command("sacct", "-n", "-P", "-X", "-D", "-j", ",".join(sorted(set(job_ids))),
                            "-o", "JobID,JobIDRaw,State,ExitCode,Reason")
    except SlurmError:
        return {}
    jobs: dict[str, JobState] = {}
    requeued: set[str] = set()
    for line in out.splitlines():
        job_id, raw_id, state, exit_code, reason = line.split("|", 4)
        if "[" in job_id:  # a not yet started rest of an array: squeue lists its elements
            continue
        state = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
        if state in ("REQUEUED", "PREEMPTED"):
            requeued.add(raw_id)
        entry = JobState(job_id, raw_id, state, reason, exit_code, raw_id in requeued)
        jobs[job_id] = jobs[raw_id] = entry
    return jobs


# ------------------------------------------------------------------------------------------- the job
class SlurmRun(submitit.helpers.Checkpointable):
    """What a SLURM job executes: one run through the worker, requeued (and resumed) on preemption."""

    def __init__(self, spec: RunSpec, results_root: Path, tracking_uri: str | None = None,
                 data_root: str | None = None, max_timeouts: int = 3, usr2_after_s: int | None = None) -> None:
        self.spec = spec
        self.results_root = Path(results_root)
        self.tracking_uri = tracking_uri
        self.data_root = data_root
        self.max_timeouts = max_timeouts
        self.usr2_after_s = usr2_after_s  # when SLURM's time-limit USR2 comes: time limit minus signal delay
        self.started = time.time()

    @property
    def run_dir(self) -> Path:
        return run_dir(self.results_root, self.spec)

    def __call__(self) -> str:
        from harness.launch.worker import execute

        print(f"spikebench: run {self.spec.run_id} with the code in {REPO_ROOT}", file=sys.stderr, flush=True)
        self.started = time.time()
        state = execute(self.spec, self.results_root, self.data_root)
        if state not in DONE_STATES:
            reason = RunRecord(self.run_dir).status.get("reason") or "no reason recorded"
            raise RuntimeError(f"run {self.spec.run_id} {state}: {reason}")
        if self.tracking_uri and submitit.JobEnvironment().global_rank == 0:
            self._log_to_mlflow()
        return state

    def _log_to_mlflow(self) -> None:
        from harness.tracking import log_run_dir

        try:
            log_run_dir(self.run_dir, self.tracking_uri, suite=self.spec.suite)
        except Exception as err:  # an unreachable tracking server must not fail a finished run
            print(f"MLflow logging to {self.tracking_uri} failed ({type(err).__name__}: {err}); "
                  f"run `harness collect` to log {self.run_dir}", file=sys.stderr, flush=True)

    def checkpoint(self, *args: Any, **kwargs: Any) -> SubmittedPickle | None:
        """Called by submitit on USR2 (time limit or preemption): record the requeue and requeue the job with its
        submitted pickle unchanged (its SHA-256 is checked again when it restarts); the engine's own checkpoints
        are where it resumes. After ``max_timeouts`` time limits the run is given up (None: no requeue)."""
        status = RunRecord(self.run_dir).status
        timeouts = int(status.get("slurm_timeouts") or 0) + self._timed_out()
        if timeouts > self.max_timeouts:
            write_status(self.run_dir, "failed", reason=f"hit the time limit {timeouts} times (max_timeouts "
                         f"{self.max_timeouts} in the cluster profile); resubmit with `harness submit --failed`",
                         slurm_timeouts=timeouts)
            return None
        write_status(self.run_dir, "interrupted", reason="requeued by SLURM (time limit or preemption); resumes "
                     "from its last checkpoint", slurm_requeues=int(status.get("slurm_requeues") or 0) + 1,
                     slurm_timeouts=timeouts)
        return SubmittedPickle(submitit.JobEnvironment().paths.submitted_pickle)

    def _timed_out(self) -> bool:
        """Whether this attempt's USR2 is its time limit's (it came when the limit's signal is due, a minute's
        slack for starting) rather than a preemption's."""
        return self.usr2_after_s is not None and time.time() - self.started >= self.usr2_after_s - 60


class SubmittedPickle(submitit.helpers.DelayedSubmission):
    """What a requeued job runs again: the pickle submitted for it, byte for byte, so that the SHA-256 recorded at
    submission still vouches for it (submitit would otherwise write a new pickle from the job's side)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def set_timeout(self, timeout_min: int, max_num_timeout: int) -> None:
        """The submitted pickle keeps its own timeout settings; ``SlurmRun`` counts time limits itself."""

    def dump(self, filepath: Path | str) -> None:
        """Write the submitted pickle's bytes to ``filepath`` (submitit then moves it over the job's pickle)."""
        shutil.copyfile(self.path, filepath)


# ------------------------------------------------------------------------------------------- submission
def snapshot_code(destination: Path) -> Path:
    """Copy the ``harness`` and ``zoo`` packages into ``destination/code`` (with the git state and the list of
    tracked files, which the code fingerprint counts) so that edits after submitting do not change queued jobs;
    returns the code directory."""
    from harness.engine.provenance import git_state, tracked_files

    code = destination / "code"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in SNAPSHOT_PACKAGES:
        shutil.copytree(REPO_ROOT / package, code / package, ignore=ignore)
    tracked = tracked_files(REPO_ROOT)
    snapshot = {"source": str(REPO_ROOT), "git": git_state(REPO_ROOT), "created": time.time(),
                "tracked": sorted(tracked) if tracked is not None else None}
    (code / "snapshot.json").write_text(json.dumps(snapshot, indent=2) + "\n")
    owner_only(code)
    return code


def owner_only(tree: Path) -> None:
    """Make ``tree`` readable and writable by its owner alone (directories 0700, files 0600): whoever can write
    the code the jobs run can run code on the nodes (copies keep their source's modes, the umask does not apply)."""
    for directory, _, files in os.walk(tree):
        os.chmod(directory, 0o700)
        for name in files:
            os.chmod(Path(directory) / name, 0o600)


@contextlib.contextmanager
def owner_only_umask() -> Iterator[None]:
    """Files and directories created meanwhile (the submission folder, job pickles, sbatch scripts) are the owner's
    alone (umask 077)."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def pickle_check(folder: Path) -> list[str]:
    """Shell lines of the sbatch script that refuse to start a job whose pickle's SHA-256 is not the one recorded at
    submission in the job's SLURM comment: the check runs before submitit unpickles anything, and neither the
    script (kept by slurmctld) nor the comment can be changed by writing to the results directory."""
    return [
        'job=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}; job=${job:-$SLURM_JOB_ID}',
        f'pickle={shlex.quote(str(folder))}/"${{job}}_submitted.pkl"',
        'for attempt in 1 2 3; do recorded=$(squeue -h -j "$job" -o %k) && break; sleep 2; done',
        f'actual={PICKLE_TAG}$(sha256sum "$pickle" | cut -d" " -f1)',
        f'if [ "$actual" != "$recorded" ]; then echo "spikebench: refusing to unpickle $pickle: its SHA-256 '
        f'(${{actual#{PICKLE_TAG}}}) differs from the one recorded at submission (${{recorded#{PICKLE_TAG}}}); it was '
        'changed after submission" >&2; exit 1; fi',
    ]


def record_pickle_hashes(jobs: list[submitit.Job]) -> None:
    """Record each (held) job's pickle SHA-256 in its SLURM comment, where ``pickle_check`` reads it."""
    for job in jobs:
        digest = hashlib.sha256(job.paths.submitted_pickle.read_bytes()).hexdigest()
        slurm_command("scontrol", "update", f"JobId={job.job_id}", f"Comment={PICKLE_TAG}{digest}")


def executor_for(profile: ClusterProfile, folder: Path, code: Path, job_name: str,
                 after: str | None = None) -> submitit.AutoExecutor:
    """A submitit SLURM executor with the profile's resources; its jobs start held (released once their ids
    are recorded), run in the code snapshot, and wait for job ``after`` to end when given."""
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=profile.max_timeouts,
                                     slurm_python=profile.python)
    nodes, tasks_per_node = profile.layout
    setup = [*pickle_check(folder), *profile.setup, f"cd {shlex.quote(str(code))}",
             f"export PYTHONPATH={shlex.quote(str(code))}${{PYTHONPATH:+:$PYTHONPATH}}"]
    flags: dict[str, Any] = {**profile.sbatch, "hold": True}
    if after:
        flags["dependency"] = f"afterany:{after}"
    params: dict[str, Any] = dict(
        name=job_name, timeout_min=profile.timeout_min, nodes=nodes, tasks_per_node=tasks_per_node,
        cpus_per_task=profile.cpus_per_gpu, slurm_partition=profile.partition, slurm_account=profile.account,
        slurm_qos=profile.qos, slurm_constraint=profile.constraint, slurm_array_parallelism=profile.array_parallelism,
        slurm_signal_delay_s=profile.signal_delay_s, slurm_setup=setup, slurm_additional_parameters=flags,
    )
    if profile.gpus_per_run:
        params["slurm_gpus_per_node"] = f"{profile.gpu_type}:{tasks_per_node}" if profile.gpu_type else tasks_per_node
        params["slurm_mem_per_gpu"] = profile.mem_per_gpu
    else:
        params["slurm_mem"] = profile.mem_per_gpu
    executor.update_parameters(**params)
    return executor


def _submit_batch(executor: submitit.AutoExecutor, runs: list[SlurmRun]) -> list[submitit.Job]:
    """Submit ``runs`` as one job array. submitit prints sbatch's error output before raising it: that output is
    held back (the caller reports the error in one line) and passed on only when the submission succeeds."""
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held), executor.batch():
            jobs = [executor.submit(run) for run in runs]
    except submitit.core.utils.FailedJobError:
        held = io.StringIO()  # sbatch's refusal: the caller reports it in one line
        raise
    finally:
        sys.stderr.write(held.getvalue())
    return jobs


def sbatch_reason(stderr: str) -> str:
    """The one meaningful line of sbatch's error output: its first ``sbatch: error:`` message (the generic
    "Batch job submission failed:" prefix dropped), else its last non-empty line."""
    errors = [line.split("error:", 1)[1].strip() for line in stderr.splitlines() if "error:" in line]
    if not errors:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        return lines[-1] if lines else "no error message"
    return errors[0].removeprefix("Batch job submission failed:").strip()


def _reachable_store(tracking_uri: str | None) -> str | None:
    """The tracking URI, its store created and migrated before jobs write to it in parallel; None (with a
    warning) when it cannot be reached from here: the run directories then wait for ``harness collect``."""
    if tracking_uri is None:
        return None
    from harness.tracking import ensure_store

    try:
        ensure_store(tracking_uri)
    except Exception as err:  # an unreachable server must not stop a submission; collect catches up
        warnings.warn(f"tracking store {tracking_uri} unavailable ({type(err).__name__}: {err}): jobs will not "
                      f"log to MLflow; run `harness collect` after they finish", stacklevel=3)
        return None
    return tracking_uri


def submit_suite(specs: list[RunSpec], profile_path: str | Path, results_root: Path, failed_only: bool = False,
                 tracking_uri: str | None = None, data_root: str | None = None, keep_stale: bool = False) -> list[str]:
    """Submit the suite's unfinished runs (only its failed or cancelled ones with ``failed_only``) that are not
    already queued or running; one job array, split at MaxArraySize into arrays that run one after another.
    Runs computed by other code are set aside under ``<results>/stale/`` and resubmitted unless ``keep_stale``.
    Returns the submitted job ids (array form ``123_4``)."""
    path = resolve_profile(profile_path)
    profile = load_profile(path)
    partitions = cluster_partitions()
    if partitions is not None:
        check_fits_cluster(profile, path, partitions)
    results_root = Path(results_root).resolve()
    states = slurm_states(results_root, specs)
    if not keep_stale:
        for spec in specs:
            if states[spec.run_id].state not in LIVE_STATES and set_aside_stale(results_root, spec):
                states[spec.run_id] = RunState(spec.run_id, "unsubmitted")
    wanted = ("failed", "cancelled") if failed_only else ("unsubmitted", "failed", "cancelled")
    todo = [spec for spec in specs if states[spec.run_id].state in wanted]
    if not todo:
        return []
    array_size = max_array_size()
    tracking_uri = _reachable_store(tracking_uri)
    for spec in todo:
        prepare(results_root, spec)
    submission = results_root / "slurm" / f"{time.strftime('%Y%m%d-%H%M%S')}-{todo[0].suite}-{uuid.uuid4().hex[:6]}"
    usr2_after_s = profile.timeout_min * 60 - profile.signal_delay_s
    submitted: list[str] = []
    with owner_only_umask():
        code = snapshot_code(submission)
        for part in chunks(todo, array_size):
            executor = executor_for(profile, submission / "logs", code, f"spikebench-{todo[0].suite}",
                                    after=submitted[-1].split("_")[0] if submitted else None)
            runs = [SlurmRun(spec, results_root, tracking_uri, data_root, profile.max_timeouts, usr2_after_s)
                    for spec in part]
            try:
                jobs = _submit_batch(executor, runs)
            except submitit.core.utils.FailedJobError as err:
                if not submitted:  # nothing of this submission reached SLURM: its folder goes too
                    shutil.rmtree(submission, ignore_errors=True)
                raise SlurmError(f"sbatch refused the job: {sbatch_reason(str(err))} (cluster profile "
                                 f"{profile.name}, {_shown_path(path)})") from None
            _record_and_release(jobs, part, results_root, submission)
            submitted += [job.job_id for job in jobs]
    return submitted


def _record_and_release(jobs: list[submitit.Job], specs: list[RunSpec], results_root: Path, submission: Path) -> None:
    """While an array's jobs are held: record each job's pickle SHA-256 in SLURM and its job id in its run's
    status; then release the array."""
    record_pickle_hashes(jobs)
    for spec, job in zip(specs, jobs):
        write_status(run_dir(results_root, spec), "pending", slurm_job_id=job.job_id, slurm_requeues=0,
                     slurm_log=str(job.paths.stderr), slurm_submission=str(submission))
    slurm_command("scontrol", "release", jobs[0].job_id.split("_")[0])


# ------------------------------------------------------------------------------------------- status and cancel
@dataclass(frozen=True)
class RunState:
    """A run's state on SLURM merged with its record."""

    run_id: str
    state: str  # one of STATES
    job_id: str | None = None
    slurm_state: str | None = None  # SLURM's own state name
    reason: str | None = None


def _merge(run_id: str, record: RunRecord, queued: JobState | None, accounted: JobState | None) -> RunState:
    """One run's state from its record and SLURM's view of its job (queue first, then accounting)."""
    status, recorded = record.status, record.state
    job_id = str(status.get("slurm_job_id") or "") or None
    if recorded in DONE_STATES:
        return RunState(run_id, "completed" if recorded == "finished" else "diverged", job_id,
                        accounted.state if accounted else None, status.get("reason"))
    if job_id is None:  # never submitted to SLURM; "running" is a local launcher's live process
        state = recorded if recorded in ("running", "failed") else "unsubmitted"
        return RunState(run_id, state, None, None, status.get("reason"))
    slurm = queued or accounted
    if slurm is None:  # not queued and no accounting record
        reason = status.get("reason") if recorded == "failed" else (
            f"job {job_id} is no longer known to SLURM (record says {recorded})")
        return RunState(run_id, "failed", job_id, None, reason)
    if slurm.state in ("RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SUSPENDED", "SIGNALING"):
        return RunState(run_id, "running", job_id, slurm.state)
    if slurm.state in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"):
        was_requeued = (accounted is not None and accounted.requeued) or recorded == "interrupted"
        return RunState(run_id, "requeued" if was_requeued else "queued", job_id, slurm.state,
                        slurm.reason or None)
    state = "cancelled" if slurm.state == "CANCELLED" else "failed"
    if recorded == "failed":
        return RunState(run_id, state, job_id, slurm.state, status.get("reason"))
    reason = f"SLURM job {job_id} {slurm.state} (exit code {slurm.exit_code or '?'})"
    tail = tail_lines(status.get("slurm_log"), lines=10)
    return RunState(run_id, state, job_id, slurm.state, reason + (f"; last log lines:\n{tail}" if tail else ""))


def slurm_states(results_root: Path, specs: list[RunSpec]) -> dict[str, RunState]:
    """Each run's state (queued, running, requeued, completed, failed, ...) from squeue and sacct merged with
    its record; a run that SLURM ended without a record of it is marked failed with the reason."""
    results_root = Path(results_root).resolve()
    records = {spec.run_id: RunRecord(run_dir(results_root, spec)) for spec in specs}
    job_ids = [str(r.status["slurm_job_id"]) for r in records.values() if r.status.get("slurm_job_id")]
    queue = queue_states() if job_ids else {}
    accounting = accounting_states(job_ids)
    merged: dict[str, RunState] = {}
    for run_id, record in records.items():
        job_id = str(record.status.get("slurm_job_id") or "")
        merged[run_id] = state = _merge(run_id, record, queue.get(job_id), accounting.get(job_id))
        if state.state in ("failed", "cancelled") and record.state != "failed":
            write_status(record.dir, "failed", reason=state.reason)
    return merged


def cancel_suite(results_root: Path, specs: list[RunSpec]) -> int:
    """Cancel the suite's queued and running jobs; their runs are recorded as failed (cancelled), so that
    ``submit_suite(..., failed_only=True)`` can send them again. Returns how many runs were cancelled.

    The run's job step (submitit's one srun, step 0) gets SIGKILL first: submitit ignores SIGTERM, so a plain
    scancel would let a run train on for KillWait seconds and possibly finish. Checkpoints are written
    atomically, so nothing is lost."""
    results_root = Path(results_root).resolve()
    live = [state for state in slurm_states(results_root, specs).values() if state.state in LIVE_STATES]
    if not live:
        return 0
    running = sorted({state.job_id for state in live if state.state == "running" and state.job_id})
    if running:
        try:
            slurm_command("scancel", "--signal=KILL", *[f"{job_id}.0" for job_id in running])
        except SlurmError:  # a step that ended meanwhile cannot be signalled; the job cancel below still runs
            pass
    slurm_command("scancel", *sorted({state.job_id for state in live if state.job_id}))
    for state in live:
        write_status(results_root / "runs" / state.run_id, "failed",
                     reason=f"cancelled (harness cancel) while {state.state}: SLURM job {state.job_id}")
    return len(live)
