"""The test-wide rules of tests/conftest.py hold: a package scripts/test.sh installs can never be skipped silently."""

import subprocess
import sys
import textwrap
from pathlib import Path

from ci_packages import installed_by_test_script

TESTS = Path(__file__).resolve().parent


def test_the_dependencies_and_the_dvs_and_dev_extras_are_what_test_sh_installs():
    packages = installed_by_test_script()
    assert {"tonic", "spikingjelly", "pytest_timeout", "torch"} <= set(packages)
    assert packages["spikingjelly"] == "spikingjelly==2.0.0"  # a runtime dependency (the energy conventions)
    assert packages["tonic"].startswith("tonic==")


def test_a_skip_for_a_package_test_sh_installs_fails(tmp_path):
    """tonic and spikingjelly made unimportable: their importorskips (in a test and at module level, as in
    tests/harness/data/test_data_events.py) fail; a skip for a package nobody installs stays a skip."""
    shims = tmp_path / "shims"
    for package in ("tonic", "spikingjelly"):
        (shims / package).mkdir(parents=True)
        (shims / package / "__init__.py").write_text(f"raise ModuleNotFoundError('blocked: no {package}', name={package!r})\n")
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "test_in_test.py").write_text(textwrap.dedent("""\
        import pytest

        def test_needs_tonic():
            pytest.importorskip("tonic")

        def test_needs_a_package_nobody_installs():
            pytest.importorskip("no_such_optional_package")
        """))
    (probe / "test_module_level.py").write_text(textwrap.dedent("""\
        import pytest

        sj_utils = pytest.importorskip("spikingjelly.datasets.utils")

        def test_uses_spikingjelly():
            pass
        """))
    (probe / "pytest.ini").write_text("[pytest]\n")
    env = {"PYTHONPATH": f"{shims}:{TESTS}:{TESTS.parent}", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-rA", "-p", "no:cacheprovider",
                          "--continue-on-collection-errors",
                          str(probe)], capture_output=True, text=True, env=env, cwd=probe, timeout=300)
    out = run.stdout
    assert run.returncode == 1, out
    assert "FAILED test_in_test.py::test_needs_tonic" in out
    assert "tonic is missing, but scripts/test.sh installs it (tonic==" in out
    assert "ERROR test_module_level.py" in out and "spikingjelly is missing" in out
    assert "SKIPPED [1] test_in_test.py" in out and "no_such_optional_package" in out
