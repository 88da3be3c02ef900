"""The whole-model MAC target: the bisected ratio meets it, and the dry run is what apply builds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeslim.bench.macs import count_macs
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import apply
from edgeslim.lowrank import RankRule, SpatialSVDConfig, SVDConfig, planned, ratio_for_macs


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 24, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(24, 24, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(24, 32, 3, stride=2, padding=1),
    )


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_ratio_for_macs_meets_the_target_and_apply_agrees(fraction):
    net, x = _net(), torch.zeros(1, 3, 16, 16)
    found = ratio_for_macs(net, x, SpatialSVDConfig(), fraction)
    assert found.macs <= fraction * found.input_macs
    # a slightly larger ratio would overshoot (the bisection stops near the boundary)
    above = [m for r, m in found.steps if r > found.ratio]
    assert above and min(above) > fraction * found.input_macs
    applied, _ = apply(net, SpatialSVDConfig(RankRule(ratio=found.ratio)))
    assert count_macs(applied, x)[0] == found.macs
    dry = planned(net, SpatialSVDConfig(RankRule(ratio=found.ratio)))
    assert [tuple(p.shape) for p in dry.parameters()] == [
        tuple(p.shape) for p in applied.parameters()
    ]


def test_an_unreachable_target_is_a_clear_error():
    net = nn.Sequential(nn.Linear(8, 1))  # rank 1 needs 9 weights, more than its 8
    with pytest.raises(EdgeslimError, match="cannot reach"):
        ratio_for_macs(net, torch.zeros(1, 8), SVDConfig(), 0.5)
