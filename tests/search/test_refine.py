"""Solve, measure, tighten: against a known "true" cost the loop ends at the true optimum."""

import itertools

import pytest
from problems import random_problem

from edgeslim.search.budget import refine
from edgeslim.search.milp import evaluate
from edgeslim.search.policy import Policy


def truth(p, factor: float):
    """A deployment whose latency is ``factor`` x the additive prediction (MACs exact)."""
    calls = []

    def apply_and_measure(sol):
        calls.append((sol.choice, sol.fallback))
        _, costs = evaluate(p, sol.choice, sol.fallback)
        measured = {"latency_ms": factor * costs["latency_ms"], "macs": costs["macs"]}
        return Policy(tuple(float(c) for c in sol.choice)), None, measured

    return apply_and_measure, calls


def true_optimum(p, limits: dict, factor: float) -> float | None:
    n_d, n_r, n_f = p.shape
    best = None
    for choice in itertools.product(range(n_r), repeat=n_d):
        for fb in itertools.product((False, True), repeat=n_f):
            obj, c = evaluate(p, choice, fb)
            if factor * c["latency_ms"] <= limits["latency_ms"] and c["macs"] <= limits["macs"]:
                best = obj if best is None else min(best, obj)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_pessimistic_latency_is_tightened_to_the_true_optimum(seed):
    p = random_problem(seed)
    budgets = {"latency_ms": 8.5, "macs": 1e7}
    fn, calls = truth(p, 1.2)  # the additive model is 20% optimistic
    r = refine(p, budgets, fn, latency_margin=0.1, max_rounds=6)
    want = true_optimum(p, r.aim, 1.2)
    assert r.aim["latency_ms"] == pytest.approx(8.5 * 0.9)
    if want is None:
        assert not r.chosen.within(r.aim)
        return
    assert r.chosen.within(r.aim) and r.chosen.met
    assert r.chosen.solution.objective == pytest.approx(want, abs=1e-9)
    assert len(calls) <= 3 and len(set(calls)) == len(calls)  # each policy measured once


def test_impossible_budget_measures_the_most_compressed_and_returns_the_closest():
    p = random_problem(1)
    fn, calls = truth(p, 1.0)
    r = refine(p, {"latency_ms": 0.1, "macs": 1e7}, fn)
    assert r.infeasible and not r.chosen.met
    assert [q.how for q in r.floors] == ["lowest predicted cost", "largest ratios"]
    assert r.floors[1].solution.choice == (2,) * 4  # every group at its largest ratio
    assert r.chosen is min(r.points, key=lambda q: q.worst({"latency_ms": 0.1, "macs": 1e7}))
    assert not any(any(q.solution.fallback) for q in r.floors)


def test_a_margin_that_leaves_no_policy_falls_back_to_the_budget_itself():
    p = random_problem(2)
    fn, calls = truth(p, 1.0)
    lo = min(evaluate(p, ch)[1]["latency_ms"] for ch in itertools.product(range(3), repeat=4))
    r = refine(p, {"latency_ms": lo / 0.95, "macs": 1e7}, fn, latency_margin=0.1)
    assert [q.how for q in r.points] == ["milp, no margin"] and not r.floors
    assert r.chosen.met and r.chosen.measured["latency_ms"] <= lo / 0.95
