"""Graph tests run single-threaded: on a shared 2-core box, 2 OpenMP threads spin-wait."""

import pytest

from edgeslim.core.modes import torch_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield
