"""Where a run's numbers come from: library versions, git commit, host."""

from __future__ import annotations

import json
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("spikebench", "torch", "torchvision", "timm", "numpy", "spikingjelly", "scikit-learn")
REPO = Path(__file__).resolve().parents[2]


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


def provenance() -> dict[str, Any]:
    """Versions, git state, host and device of this process."""
    return {
        "versions": library_versions(),
        "git": git_state(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
