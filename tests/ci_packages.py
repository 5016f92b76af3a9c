"""What scripts/test.sh installs, read from the script and pyproject.toml (tests/conftest.py refuses skips for it)."""

import re
import tomllib
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@cache
def installed_by_test_script() -> dict[str, str]:
    """Import name -> requirement of every package ``scripts/test.sh`` installs: the project's dependencies and
    the extras of its pip install."""
    script = (ROOT / "scripts" / "test.sh").read_text()
    extras = re.search(r"pip install .*'\.\[([\w,]+)\]'", script).group(1).split(",")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in extras for r in project["optional-dependencies"][extra]]
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].replace("-", "_").lower(): r for r in requirements}
