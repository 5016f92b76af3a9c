"""Where a run's numbers come from: library versions, git commit, host, threads and a fingerprint of the code.

The run id (``harness.suite.RunSpec.run_id``) names WHAT is computed (model, data, recipe, budget, threads) and
holds no code version; ``code_fingerprint()`` names the code that computes it. A run records the fingerprint it
was computed with; a run whose fingerprint differs from the checkout's is stale (``harness status`` says so) and
a rerun recomputes it, keeping the old directory under ``<results>/stale/``. So an edit that changes results
never silently reuses old ones, and the same experiment keeps its id across code versions to compare them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("spikebench", "torch", "torchvision", "timm", "numpy", "spikingjelly", "scikit-learn")
REPO = Path(__file__).resolve().parents[2]
# the code that computes a run's numbers (files or folders, relative to the repository root): models, engine,
# data, metrics and recipes; the launchers, tracking and reports only move the numbers around
RESULT_CODE = ("zoo", "harness/engine", "harness/data", "harness/metrics", "harness/recipes", "harness/recipe.py")


@functools.cache
def code_fingerprint(root: Path = REPO) -> str:
    """A hash of the source of the code that computes results (``RESULT_CODE`` under ``root``): every file's
    path and bytes, byte-compiled caches excluded. Equal fingerprints mean the same code computed the runs."""
    digest = hashlib.sha256()
    for part in RESULT_CODE:
        base = root / part
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape results (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["torch"] = torch.__version__  # with its build tag (+cpu, +cu130)
    versions["python"] = platform.python_version()
    versions["cuda"] = torch.version.cuda
    return versions


def git_state(repo: Path = REPO) -> dict[str, Any]:
    """The checked-out commit and whether tracked files differ from it. A code snapshot made for a SLURM
    submission (not a checkout) answers from the ``snapshot.json`` written beside its packages; outside
    git the commit is None, with the reason."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return {"commit": commit, "dirty": dirty}
    except (subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired) as err:
        snapshot = repo / "snapshot.json"
        if snapshot.is_file():
            return {**json.loads(snapshot.read_text())["git"], "snapshot": str(repo)}
        reason = err.stderr.strip() if isinstance(err, subprocess.CalledProcessError) else str(err)
        return {"commit": None, "dirty": None, "reason": reason}


def thread_settings() -> dict[str, Any]:
    """This process's CPU parallelism: torch intra- and inter-op threads and the OpenMP/MKL environment."""
    return {"torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
            **{name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}


def gpu_driver() -> str | None:
    """The NVIDIA driver's version as ``nvidia-smi`` reports it (None without a CUDA device or the tool)."""
    if not torch.cuda.is_available():
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def provenance() -> dict[str, Any]:
    """Versions, git state, code fingerprint, threads, host and device of this process."""
    return {
        "versions": library_versions(),
        "git": git_state(),
        "code_fingerprint": code_fingerprint(),
        "threads": thread_settings(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "driver": gpu_driver(),
    }
