#!/usr/bin/env bash
# Install everything the tests need (venv, Python packages, Debian packages, services) and run pytest.
# Usage: bash scripts/test.sh [pytest args...]   (default: the fast suite; add -m "" for slow tests too)
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {  # Debian packages, installed once (the machine is root; no daemon is started by apt here)
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Debian's chromium drives the leaderboard's browser tests (Playwright never downloads a browser here)
apt_install chromium

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q -e '.[dev,dvs]'

export PYTHONHASHSEED=0

# SLURM tests need the local one-node cluster: start it when they are selected, stop it after
# (SPIKEBENCH_SLURM=0 skips this; the SLURM tests then skip, saying why).
if [ "$(id -u)" -eq 0 ] && [ "${SPIKEBENCH_SLURM:-1}" != 0 ]; then
  selected=$(.venv/bin/python -m pytest --collect-only -q "$@" 2>/dev/null || true)
  if grep -q 'test_slurm\.py' <<<"$selected" && ! bash slurm/local-cluster.sh status >/dev/null 2>&1; then
    bash slurm/local-cluster.sh up
    trap 'bash slurm/local-cluster.sh down' EXIT
  fi
fi

.venv/bin/python -m pytest "$@"
