"""The MILP's choice equals brute-force enumeration of every policy (the oracle)."""

import itertools

import numpy as np
import pytest

from edgeslim.search.milp import Cost, Problem, evaluate, most_compressed, solve


def random_problem(seed: int, n_d: int = 4, n_r: int = 3, n_f: int = 2) -> Problem:
    """Costs fall with the ratio; shared layers give positive (bilinear-like) pair terms."""
    rng = np.random.default_rng(seed)
    loss = np.cumsum(rng.uniform(0, 1, (n_d, n_r)), axis=1)
    loss[:, 0] = 0
    costs = {}
    for name, base in (("latency_ms", 10.0), ("macs", 1e7)):
        single = -np.cumsum(rng.uniform(0, base / n_d / n_r, (n_d, n_r)), axis=1)
        single[:, 0] = 0
        pair = {}
        for a, b in [(0, 1), (1, 2), (0, 3)][: n_d - 1]:
            m = rng.uniform(0, base / n_d / n_r / 2, (n_r, n_r))
            m[0, :] = m[:, 0] = 0
            pair[(a, b)] = m
        fb = rng.uniform(0, base / 10, n_f) if name == "latency_ms" else np.zeros(n_f)
        costs[name] = Cost(base, single, pair, fb)
    return Problem(loss, costs, rng.uniform(0, 1.5, n_f))


def brute_force(p: Problem, budgets: dict) -> float | None:
    n_d, n_r, n_f = p.shape
    best = None
    for choice in itertools.product(range(n_r), repeat=n_d):
        for fb in itertools.product((False, True), repeat=n_f):
            obj, costs = evaluate(p, choice, fb)
            if all(costs[k] <= b + 1e-9 for k, b in budgets.items()):
                best = obj if best is None else min(best, obj)
    return best


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
