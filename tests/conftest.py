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
