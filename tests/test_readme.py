"""README's Python snippet runs as written (a newcomer pastes it first)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_python_snippet_runs():
    snippets = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert snippets, "README has no Python snippet"
    for code in snippets:
        exec(compile(code, str(README), "exec"), {})
