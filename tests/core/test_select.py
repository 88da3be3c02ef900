"""Layer-name patterns and module swapping (edgeslim.core.select)."""

import pytest
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.select import matches, matches_any, swap_module_


@pytest.mark.parametrize(
    ("name", "pattern", "hit"),
    [
        ("layer1.0.conv1", "layer1.0.conv1", True),
        ("layer1.0.conv1", r"layer1\..*", True),
        ("layer1.0.conv1", "layer1", False),  # whole-name match, not a prefix
        ("layer1.0.conv1", "conv1", False),
        ("fc", r"f.", True),
        ("layer1.0.conv1", r".*conv\d", True),
    ],
)
def test_matches_whole_names(name, pattern, hit):
    assert matches(name, pattern) is hit


def test_matches_any_and_bad_pattern():
    assert matches_any("fc", ["conv", "fc"])
    assert not matches_any("fc", [])
    with pytest.raises(EdgeslimError, match="bad layer pattern"):
        matches("fc", "(")


def test_swap_module_replaces_nested_child_and_returns_old():
    m = nn.Sequential(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), nn.Linear(3, 1))
    old = swap_module_(m, "0.1", nn.GELU())
    assert isinstance(old, nn.ReLU) and isinstance(m[0][1], nn.GELU)
    with pytest.raises(EdgeslimError):
        swap_module_(m, "", nn.Identity())
