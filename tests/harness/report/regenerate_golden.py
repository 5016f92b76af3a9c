"""Regenerate the golden tables of ``test_report_tables.py`` after an intended change of the output; review
the diff before committing. The test itself only ever reads them.

    PYTHONPATH=. .venv/bin/python tests/harness/report/regenerate_golden.py
"""

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"


def main() -> None:
    sys.path.insert(0, str(HERE))
    from harness.report.tables import render_tables
    from report_runs import fixture_runs

    with tempfile.TemporaryDirectory() as tmp:
        rendered = render_tables(fixture_runs(), "paper", tmp)
        GOLDEN.mkdir(exist_ok=True)
        for name, path in sorted(rendered.items()):
            shutil.copyfile(path, GOLDEN / name)
            print(f"wrote {GOLDEN / name}")


if __name__ == "__main__":
    main()
