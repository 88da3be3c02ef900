"""Every registered factorization, walked from the registry: a new one is checked without edits."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from edgeslim.core.methods import METHODS, apply, restore_
from edgeslim.lowrank import CPNotConvergedWarning, RankRule, config_for, method_names


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(12 * 25, 16)
    )


def test_the_short_names_are_the_registered_methods():
    assert set(method_names()) == {"svd", "tucker2", "cp", "spatial", "dws", "embedding"}
    for name in method_names():
        assert f"lowrank_{name}" in METHODS


# the embedding factorization has no layer in this net: tests/lowrank/test_albert.py
@pytest.mark.parametrize("name", [n for n in method_names() if n != "embedding"])
def test_replaying_the_record_rebuilds_the_same_structure(name):
    net = _net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CPNotConvergedWarning)
        new, rec = apply(net, config_for(name, RankRule(rank=3)))
    assert rec.layers, rec.details["skipped"]
    rebuilt = restore_(copy.deepcopy(net), [rec.to_dict()])
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in new.state_dict().items()
    }
    rebuilt.load_state_dict(new.state_dict())
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), new(x))
    for layer in rec.details["layers"].values():
        assert layer["params_after"] < layer["params_before"]
        assert 0 <= layer["rel_error"] < 1
