"""hawq_bits end to end on a small conv net with random data."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.quant.config import PTQConfig, weight_spec
from edgeslim.quant.mixed.hawq import HawqConfig, bit_problem, hawq_bits
from edgeslim.quant.mixed.ilp import solve_bits


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )


def _data():
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(4, 3, 6, 6, generator=g), torch.randint(0, 5, (4,), generator=g))
        for _ in range(2)
    ]


def _problem_of(rec):
    return bit_problem(
        [lb.layer for lb in rec.layers],
        [lb.numel for lb in rec.layers],
        [lb.macs for lb in rec.layers],
        {lb.layer: lb.omega for lb in rec.layers},
        rec.config.choices,
        rec.config.act_bits,
    )


CE = nn.functional.cross_entropy
CFG = HawqConfig(probes=8)


PARAMS = 3 * 8 * 9 + 8 * 8 * 9 + 8 * 5  # conv, conv, linear weights
BUDGET = PARAMS * 6 / 8  # bytes at an average of 6 bits


@pytest.fixture(scope="module")
def run():
    net, data = _net(), _data()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rec = hawq_bits(net, CE, data, size_budget=BUDGET, config=CFG)
    return net, data, before, rec


def test_end_to_end_record(run):
    net, data, before, rec = run
    params, budget = PARAMS, BUDGET

    assert [lb.layer for lb in rec.layers] == ["0", "3", "7"]
    for lb in rec.layers:
        assert lb.trace_ci95[0] <= lb.trace <= lb.trace_ci95[1]
        assert lb.macs > 0
        assert lb.omega[32] == 0.0
        if lb.trace > 0:
            assert lb.omega[4] > lb.omega[8] > 0.0
        else:  # clamped: no predicted damage
            assert lb.omega[4] == lb.omega[8] == 0.0
        assert lb.bits in (4, 8, 32)
    assert rec.layers[0].macs == 6 * 6 * 8 * 3 * 9  # out H*W*C * in C * kernel
    assert rec.size <= budget + 1e-6
    assert rec.size == pytest.approx(sum(lb.numel * lb.bits / 8 for lb in rec.layers))
    assert rec.float_size == params * 4
    # the front is monotone and contains the chosen point
    front = [(p.size, p.omega) for p in rec.pareto]
    assert all(a[0] < b[0] and a[1] > b[1] for a, b in itertools.pairwise(front))
    assert any(p.omega == pytest.approx(rec.omega) for p in rec.pareto if p.size <= budget + 1e-6)
    # read only: weights, mode and flags untouched
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.training
    json.dumps(rec.as_dict())


def test_bops_budget_is_met_and_binds(run):
    net, data, _, rec = run
    w8a8 = sum(lb.macs * 64 for lb in rec.layers)
    cfg = HawqConfig(probes=2)
    tight = hawq_bits(net, CE, data[:1], size_budget=PARAMS * 4, bops_budget=w8a8, config=cfg)
    assert tight.bops <= w8a8 + 1e-6
    # brute force over the 27 choices of the record's own Omegas, sizes and BOPs
    p = _problem_of(tight)
    best = min(
        p.cost(c)[0] for c in itertools.product(range(3), repeat=3) if p.cost(c)[2] <= w8a8 + 1e-6
    )
    assert tight.omega == pytest.approx(best)
    assert tight.bops < sum(lb.macs * 32 * 32 for lb in tight.layers)  # the budget binds
    with pytest.raises(EdgeslimError, match="BOPs budget"):
        hawq_bits(net, CE, data, size_budget=PARAMS * 4, bops_budget=1.0, config=cfg)


def test_fixed_activation_bits_and_layer_subset():
    net, data = _net(), _data()
    cfg = HawqConfig(choices=(4, 8), act_bits=8, probes=2, layers=("3",))
    rec = hawq_bits(net, CE, data[:1], size_budget=8 * 8 * 9 * 4 / 8, config=cfg)
    assert rec.bits == {"3": 4}
    assert rec.bops == rec.layers[0].macs * 4 * 8


def test_budget_too_small_raises():
    with pytest.raises(EdgeslimError, match="below the smallest choice"):
        hawq_bits(_net(), CE, _data(), size_budget=10.0, config=HawqConfig(probes=2))


def test_the_chosen_bits_are_the_ilp_optimum_of_the_record(run):
    # the record's Omegas fed back to the solver give the same total
    rec = run[3]
    p = _problem_of(rec)
    assert solve_bits(p, rec.size_budget).omega == pytest.approx(rec.omega)


def test_chosen_bits_become_ptq_weight_overrides(run):
    rec = run[3]
    cfg = PTQConfig(weight=weight_spec(8), activation=None, overrides=rec.ptq_overrides())
    for lb in rec.layers:
        spec = cfg.weight_spec_for(lb.layer)
        assert (spec is None) if lb.bits == 32 else (spec.bits == lb.bits)


def test_bad_choices_raise():
    with pytest.raises(EdgeslimError, match="choices"):
        hawq_bits(_net(), CE, _data(), 1e9, config=HawqConfig(choices=(16,)))
