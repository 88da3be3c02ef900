"""The rank search's MILP: the optimum of small problems against brute force.

Every policy of a few layers with a few rank options each is enumerated; the MILP's
choice must have the least damage among those within the budget, and never use an
option that was not measured faster (``faster`` False) however tight the budget.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgeslim.core import EdgeslimError
from edgeslim.search.milp import Cost, Problem, solve
from edgeslim.search.ranks import DENSE, LayerOptions, RankOption, choose_ranks, rank_problem


def random_layers(seed: int, n_layers: int = 4, n_opts: int = 4) -> list[LayerOptions]:
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(n_layers):
        k = int(rng.integers(1, n_opts + 1))  # layers with different numbers of options
        opts = [DENSE]
        for j in range(k):
            macs = -float(rng.integers(10, 100))
            opts.append(
                RankOption(
                    f"r{j}",
                    float(rng.uniform(0, 1)) * (1 + j),
                    macs,
                    macs / 10,
                    float(rng.normal(-0.5, 0.5)),
                    bool(rng.uniform() < 0.7),
                )
            )
        layers.append(LayerOptions(f"layer{i}", tuple(opts)))
    return layers


def brute_force(layers, base, budgets, floors=None):
    """(least damage, its choice) over every policy of open options within the budgets
    (and at or above the floors)."""
    best = None
    field = {"macs": "macs", "params": "params", "latency_ms": "ms"}
    spaces = [[j for j, o in enumerate(la.options) if j == 0 or o.faster] for la in layers]
    for choice in itertools.product(*spaces):
        opts = [la.options[j] for la, j in zip(layers, choice, strict=True)]

        def cost(k, opts=opts):
            return base[k] + sum(getattr(o, field[k]) for o in opts)

        ok = all(cost(k) <= b + 1e-9 for k, b in budgets.items())
        ok = ok and all(cost(k) >= f - 1e-9 for k, f in (floors or {}).items())
        dmg = sum(o.damage for o in opts)
        if ok and (best is None or dmg < best[0] - 1e-12):
            best = (dmg, choice)
    return best


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("budget", ["macs", "latency_ms", "both"])
def test_milp_matches_brute_force(seed, budget):
    layers = random_layers(seed)
    base = {"macs": 400.0, "params": 40.0, "latency_ms": 4.0}
    rng = np.random.default_rng(100 + seed)
    limits = {"macs": float(rng.uniform(250, 390)), "latency_ms": float(rng.uniform(2.5, 4.0))}
    budgets = limits if budget == "both" else {budget: limits[budget]}
    want = brute_force(layers, base, budgets)
    sol = choose_ranks(layers, base, budgets)
    if want is None:
        assert sol is None
        return
    assert sol is not None
    assert sol.objective == pytest.approx(want[0], abs=1e-9)
    for la, j in zip(layers, sol.choice, strict=True):
        assert j < len(la.options) and (j == 0 or la.options[j].faster)
    for k, b in budgets.items():
        assert sol.predicted[k] <= b + 1e-6


def test_slower_form_is_never_chosen_even_when_it_alone_meets_the_budget():
    fast_small = RankOption("fast", 5.0, -10, -1, -0.2, True)
    slow_big = RankOption("slow", 0.1, -90, -9, 0.3, False)  # fewer MACs, but measured slower
    layers = [LayerOptions("a", (DENSE, fast_small, slow_big))]
    assert choose_ranks(layers, {"macs": 100}, {"macs": 95}).choice == (1,)
    assert choose_ranks(layers, {"macs": 100}, {"macs": 50}) is None  # only "slow" would fit


def test_rank_problem_pads_short_layers_with_closed_options():
    a = LayerOptions("a", (DENSE, RankOption("r", 1.0, -5, -1, -1, True)))
    b = LayerOptions(
        "b", (DENSE,) + tuple(RankOption(f"r{i}", 1, -5, -1, -1, True) for i in range(3))
    )
    p = rank_problem([a, b], {"macs": 10})
    assert p.allowed.tolist() == [[True, True, False, False], [True] * 4]


def test_allowed_must_leave_every_decision_an_option():
    with pytest.raises(EdgeslimError, match="at least one allowed"):
        Problem(np.zeros((1, 2)), {}, allowed=np.zeros((1, 2), dtype=bool))
    with pytest.raises(EdgeslimError, match="shape"):
        Problem(np.zeros((1, 2)), {}, allowed=np.ones((2, 2), dtype=bool))


def test_allowed_closes_an_option_in_the_plain_milp():
    costs = {"ms": Cost(10.0, np.array([[0.0, -4.0, -6.0]]))}
    p = Problem(np.array([[0.0, 1.0, 0.5]]), costs)  # option 2 is better and cheaper...
    assert solve(p, {"ms": 7.0}).choice == (2,)
    closed = Problem(p.loss, costs, allowed=np.array([[True, True, False]]))  # ...but closed
    assert solve(closed, {"ms": 7.0}).choice == (1,)
    assert solve(closed, {"ms": 5.0}) is None


def test_bad_inputs_are_refused():
    with pytest.raises(EdgeslimError, match="no layer"):
        rank_problem([], {"macs": 1})
    with pytest.raises(EdgeslimError, match="dense"):
        rank_problem([LayerOptions("a", (RankOption("r", 1, -1, -1, -1, True),))], {"macs": 1})
    with pytest.raises(EdgeslimError, match="unknown"):
        rank_problem([LayerOptions("a", (DENSE,))], {"flops": 1})
    with pytest.raises(EdgeslimError, match="no base"):
        choose_ranks([LayerOptions("a", (DENSE,))], {"macs": 1}, {"latency_ms": 1})


@pytest.mark.parametrize("seed", range(12))
def test_floors_match_brute_force_and_spend_the_budget(seed):
    layers = random_layers(seed, n_layers=5)
    base = {"macs": 400.0, "params": 40.0, "latency_ms": 4.0}
    budget = float(np.random.default_rng(200 + seed).uniform(200, 350))
    floors = {"macs": 0.9 * budget}
    want = brute_force(layers, base, {"macs": budget}, floors)
    sol = choose_ranks(layers, base, {"macs": budget}, floors)
    if want is None:
        assert sol is None
        return
    assert sol is not None and sol.objective == pytest.approx(want[0], abs=1e-9)
    assert 0.9 * budget - 1e-6 <= sol.predicted["macs"] <= budget + 1e-6
    # a floor can only cost damage: the ceiling alone is at least as good
    assert choose_ranks(layers, base, {"macs": budget}).objective <= sol.objective + 1e-12


def test_floor_on_an_unknown_quantity_is_refused():
    layers = random_layers(0)
    with pytest.raises(EdgeslimError, match="no base value"):
        choose_ranks(layers, {"macs": 400.0}, {"macs": 300.0}, {"params": 1.0})
    p = rank_problem(layers, {"macs": 400.0})
    with pytest.raises(EdgeslimError, match="not costs"):
        solve(p, {"macs": 300.0}, floors={"ms": 1.0})
