"""The MILP's choice equals brute-force enumeration of every policy (the oracle)."""

import itertools

import pytest
from problems import brute_force, random_problem

from edgeslim.search.milp import evaluate, most_compressed, solve


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("tightness", [0.55, 0.7, 0.85])
def test_milp_matches_brute_force(seed, tightness):
    p = random_problem(seed)
    budgets = {"latency_ms": 10.0 * tightness, "macs": 1e7 * (tightness + 0.1)}
    want = brute_force(p, budgets)
    got = solve(p, budgets)
    if want is None:
        assert got is None
        return
    assert got is not None
    obj, costs = evaluate(p, got.choice, got.fallback)
    assert obj == pytest.approx(want, abs=1e-6)
    assert got.objective == pytest.approx(obj)
    assert all(costs[k] <= b * (1 + 1e-7) for k, b in budgets.items())
    assert got.predicted == pytest.approx(costs)


def test_infeasible_budget_gives_none_and_most_compressed_is_the_cheapest():
    p = random_problem(3)
    budgets = {"latency_ms": 0.01, "macs": 1.0}
    assert solve(p, budgets) is None and brute_force(p, budgets) is None
    mc = most_compressed(p, budgets)
    assert not any(mc.fallback)
    n_d, n_r, _ = p.shape
    score = [
        sum(c / budgets[k] for k, c in evaluate(p, ch)[1].items())
        for ch in itertools.product(range(n_r), repeat=n_d)
    ]
    assert sum(c / budgets[k] for k, c in mc.predicted.items()) == pytest.approx(min(score))


def test_loose_budget_prunes_nothing():
    p = random_problem(0)
    sol = solve(p, {"latency_ms": 1e9, "macs": 1e12})
    assert sol.choice == (0,) * p.shape[0]
    assert all(sol.fallback)  # free damage reduction is taken
