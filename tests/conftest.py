"""Test-wide settings: one torch thread (faster than two on the shared 2-core machines), fixed seeds; no test
skips for lack of a package that scripts/test.sh installs."""

import os
import re

import pytest
from ci_packages import installed_by_test_script

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _one_thread_and_seed():
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield


SERVICE_MARKERS = ("browser", "slurm", "mlflow_server")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true) a service test may not skip: scripts/test.sh installs and starts every service; nowhere
    may a test skip for a package scripts/test.sh installs."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and any(item.get_closest_marker(m) for m in SERVICE_MARKERS):
        report.outcome = "failed"
        report.longrepr = f"service test skipped in CI (scripts/test.sh should have provided it): {report.longrepr}"
    _fail_skip_of_installed_package(report)


def _fail_skip_of_installed_package(report) -> None:
    """A skip for a missing package (``pytest.importorskip``) that scripts/test.sh installs is a failure: that
    test would otherwise pass silently by never running."""
    found = re.search(r"could not import '([\w.]+)'", str(report.longrepr)) if report.skipped else None
    package = found.group(1).split(".")[0].lower() if found else None
    requirement = installed_by_test_script().get(package)
    if requirement:
        report.outcome = "failed"
        report.longrepr = (f"{package} is missing, but scripts/test.sh installs it ({requirement}), so a test may "
                           f"not skip for it: run scripts/test.sh ({report.longrepr})")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Module-level ``importorskip`` of a package scripts/test.sh installs fails the module instead of skipping it."""
    outcome = yield
    _fail_skip_of_installed_package(outcome.get_result())
