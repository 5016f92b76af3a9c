"""Test-wide settings: one torch thread (faster than two on the shared 2-core machines), fixed seeds."""

import os

import pytest

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
    """In CI (CI=true) a service test may not skip: scripts/test.sh installs and starts every service."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and any(item.get_closest_marker(m) for m in SERVICE_MARKERS):
        report.outcome = "failed"
        report.longrepr = f"service test skipped in CI (scripts/test.sh should have provided it): {report.longrepr}"
