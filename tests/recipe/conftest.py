"""Fixtures shared by the recipe tests."""

import pytest
from test_search import NET


@pytest.fixture
def net(tmp_path):
    """A tiny three-conv CNN in a user's file (``NET``), for the search-stage tests."""
    f = tmp_path / "net.py"
    f.write_text(NET)
    return f
