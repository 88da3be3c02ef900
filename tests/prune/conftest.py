"""Pruning tests share the graph tests' helpers (oracle check, custom architectures)."""

import sys
from pathlib import Path

import pytest

from edgeslim.core.modes import torch_threads

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "graph"))


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield
