"""The bit-width MILP against brute force over every choice."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslim.core.errors import EdgeslimError
from edgeslim.quant.mixed.ilp import BitProblem, pareto_front, size_sweep, solve_bits


def _problem(seed: int, n_layers: int, choices=(4, 8, 32)) -> BitProblem:
    rng = np.random.default_rng(seed)
    n = rng.integers(10, 1000, n_layers).astype(float)  # parameters per layer
    macs = rng.integers(100, 10_000, n_layers).astype(float)
    bits = np.array(choices, dtype=float)
    omega = rng.uniform(0, 1, (n_layers, 1)) * 4.0 ** (-bits[None, :])  # fewer bits, more damage
    omega[:, bits == 32] = 0.0
    omega *= rng.uniform(0.5, 2.0, omega.shape)  # not always ordered
    size = n[:, None] * bits[None, :] / 8
    bops = macs[:, None] * bits[None, :] ** 2
    return BitProblem(tuple(f"l{i}" for i in range(n_layers)), tuple(choices), omega, size, bops)


TOL = 1e-6  # HiGHS's primal feasibility tolerance (absolute; bytes and BOPs)


def _brute(p: BitProblem, size_budget: float, bops_budget: float | None) -> float | None:
    best = None
    for choice in itertools.product(range(len(p.choices)), repeat=len(p.layers)):
        om, size, bops = p.cost(choice)
        if size <= size_budget + TOL and (bops_budget is None or bops <= bops_budget + TOL):
            best = om if best is None else min(best, om)
    return best


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(1, 4),
    st.floats(0.0, 1.0),
    st.one_of(st.none(), st.floats(0.0, 1.0)),
)
def test_milp_matches_brute_force(seed, n_layers, size_frac, bops_frac):
    p = _problem(seed, n_layers)
    lo, hi = p.size.min(1).sum(), p.size.max(1).sum()
    size_budget = lo + size_frac * (hi - lo)
    bops_budget = None
    if bops_frac is not None:
        blo, bhi = p.bops.min(1).sum(), p.bops.max(1).sum()
        bops_budget = blo + bops_frac * (bhi - blo)
    best = _brute(p, size_budget, bops_budget)
    if best is None:
        with pytest.raises(EdgeslimError, match="no bit-width choice fits"):
            solve_bits(p, size_budget, bops_budget)
        return
    sol = solve_bits(p, size_budget, bops_budget)
    assert sol.omega == pytest.approx(best, rel=1e-9, abs=1e-15)
    assert sol.size <= size_budget + TOL
    assert bops_budget is None or sol.bops <= bops_budget + TOL
    assert sol.bits == {n: p.choices[c] for n, c in zip(p.layers, sol.choice, strict=True)}


def test_budget_below_the_smallest_model_raises():
    p = _problem(0, 3)
    with pytest.raises(EdgeslimError, match="below the smallest choice"):
        solve_bits(p, p.size.min(1).sum() - 1)
    with pytest.raises(EdgeslimError, match="BOPs budget"):
        solve_bits(p, p.size.max(1).sum(), bops_budget=p.bops.min(1).sum() - 1)


def test_budgets_that_conflict_raise():
    # size only fits all-4-bit, BOPs only fits... both individually reachable, jointly not:
    # layer a is big in parameters, layer b big in MACs
    p = BitProblem(
        ("a", "b"),
        (4, 8),
        np.array([[1.0, 0.0], [1.0, 0.0]]),
        np.array([[400.0, 800.0], [4.0, 8.0]]),
        np.array([[16.0, 64.0], [1600.0, 6400.0]]),
    )
    # size <= 500 forces a=4; BOPs <= 1000 is below b's smallest, 1600: caught early
    with pytest.raises(EdgeslimError):
        solve_bits(p, 500.0, 1000.0)
    sol = solve_bits(p, 500.0, 1700.0)
    assert sol.bits == {"a": 4, "b": 4}


def test_unconstrained_budget_keeps_everything_in_float():
    p = _problem(3, 3)
    sol = solve_bits(p, p.size.max(1).sum())
    assert set(sol.bits.values()) == {32} and sol.omega == 0.0


def test_shape_mismatch_raises():
    with pytest.raises(EdgeslimError, match="shape"):
        BitProblem(("a",), (4, 8), np.zeros((1, 2)), np.zeros((1, 3)), np.zeros((1, 2)))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4))
def test_pareto_front_is_monotone_and_optimal(seed, n_layers):
    p = _problem(seed, n_layers)
    front = pareto_front(p, size_sweep(p, 12))
    assert front, "the largest budget always fits"
    sizes = [pt.size for pt in front]
    omegas = [pt.omega for pt in front]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert all(a > b for a, b in itertools.pairwise(omegas))
    assert omegas[-1] == 0.0  # the largest budget keeps every layer in float
    for pt in front:
        assert pt.size <= pt.budget + TOL
        assert pt.omega == pytest.approx(_brute(p, pt.budget, None), rel=1e-9, abs=1e-15)
