"""The MILP's choice equals brute-force enumeration of every policy (the oracle)."""

import itertools

import pytest
from problems import bits_problem, brute_force, random_problem

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


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("tightness", [0.5, 0.7, 0.9])
def test_milp_with_bit_switches_matches_brute_force(seed, tightness):
    """Bit-width beside channel ratios: 4-bit switches add damage and save size; a layer
    is never both float and 4-bit, and the MILP still finds the brute-force optimum."""
    p = bits_problem(seed)
    budgets = {"latency_ms": 10.0 * tightness, "size_bytes": 1e6 * tightness}
    want = brute_force(p, budgets)
    got = solve(p, budgets)
    if want is None:
        assert got is None
        return
    assert got is not None
    assert got.objective == pytest.approx(want, abs=1e-6)
    assert not (got.fallback[0] and got.fallback[2]) and not (got.fallback[1] and got.fallback[3])
    _, costs = evaluate(p, got.choice, got.fallback)
    assert all(costs[k] <= b + 1e-6 for k, b in budgets.items())


def test_size_budget_alone_is_met_by_four_bits():
    """With no pruning allowed to pay, only the 4-bit switches can meet a size budget."""
    p = bits_problem(0)
    frozen = p.loss.copy()
    frozen[:, 1:] = 1e3  # pruning is ruinous
    q = type(p)(frozen, p.costs, p.gain, p.exclusive)
    sol = solve(q, {"size_bytes": 1e6 - 4e5})
    assert sol is not None and sol.choice == (0,) * len(sol.choice)
    assert sol.fallback[2] and sol.fallback[3] and not sol.fallback[0] and not sol.fallback[1]


def test_evaluate_refuses_a_layer_both_float_and_four_bit():
    p = bits_problem(1)
    with pytest.raises(Exception, match="exclusive"):
        evaluate(p, (0,) * p.shape[0], (True, False, True, False))


def test_most_compressed_takes_the_four_bit_switches():
    p = bits_problem(2)
    sol = most_compressed(p, {"size_bytes": 1e6})
    assert sol.fallback[2] and sol.fallback[3] and not sol.fallback[0] and not sol.fallback[1]
