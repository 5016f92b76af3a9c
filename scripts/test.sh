#!/usr/bin/env bash
# Install everything the tests need (venv, Python packages, Debian packages, services) and run pytest.
# Usage: bash scripts/test.sh [pytest args...]   (default: the fast suite; add -m "" for slow tests too)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q -e '.[dev,dvs]'

export PYTHONHASHSEED=0
exec .venv/bin/python -m pytest "$@"
