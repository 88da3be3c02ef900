"""Fixtures of the distillation tests; the models live in ``distill_tiny``."""

from __future__ import annotations

import pytest
from distill_tiny import TinyNet


@pytest.fixture
def tiny():
    return TinyNet
