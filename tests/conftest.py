"""Shared fixtures: every test gets its own cache directory and a fixed thread count."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EDGESLIM_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
