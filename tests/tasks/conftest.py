"""Fixtures of the task and recipe tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: these tiny models gain nothing from two, and on a shared 2-core
    machine two spinning OpenMP threads per process make everything several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
