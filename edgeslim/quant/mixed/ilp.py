"""HAWQ-V3 bit-width selection as an integer linear program (``scipy.optimize.milp``, HiGHS).

Yao et al., "HAWQ-V3: Dyadic Neural Network Quantization", ICML 2021
(arXiv:2011.10680), Section 3.4, eq. (6): every layer ``l`` takes exactly one
bit-width choice ``c`` (binary ``x[l, c]``, ``sum_c x[l, c] = 1``); minimise the
total sensitivity ``sum Omega[l, c] x[l, c]`` subject to

    sum size[l, c] x[l, c] <= size budget   (bytes of weights)
    sum bops[l, c] x[l, c] <= BOPs budget   (optional; bits_w * bits_a * MACs)

Solved to optimality (``mip_rel_gap = 0``; budgets are met within HiGHS's
absolute feasibility tolerance, 1e-6 bytes or BOPs), so the sweep of budgets in
:func:`pareto_front` is an exact Pareto front of predicted damage against size.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from edgeslim.core.errors import EdgeslimError


@dataclass(frozen=True)
class BitProblem:
    """Costs of every (layer, choice): arrays of shape ``[layers, choices]``."""

    layers: tuple[str, ...]
    choices: tuple[int, ...]  # bit-widths, e.g. (4, 8, 32)
    omega: np.ndarray  # predicted damage
    size: np.ndarray  # bytes of weights
    bops: np.ndarray  # bit operations

    def __post_init__(self) -> None:
        shape = (len(self.layers), len(self.choices))
        for name in ("omega", "size", "bops"):
            if np.shape(getattr(self, name)) != shape:
                raise EdgeslimError(
                    f"{name} has shape {np.shape(getattr(self, name))}, need {shape}"
                )
        if not self.layers or not self.choices:
            raise EdgeslimError("a bit-width problem needs at least one layer and one choice")

    def cost(self, choice: Sequence[int]) -> tuple[float, float, float]:
        """``(Omega, size, BOPs)`` of a choice index per layer."""
        idx = (np.arange(len(self.layers)), np.asarray(choice))
        return (
            float(self.omega[idx].sum()),
            float(self.size[idx].sum()),
            float(self.bops[idx].sum()),
        )


@dataclass(frozen=True)
class BitSolution:
    bits: dict[str, int]  # chosen bit-width per layer
    choice: tuple[int, ...]  # index into ``BitProblem.choices`` per layer
    omega: float  # total predicted damage
    size: float  # bytes of weights
    bops: float


@dataclass(frozen=True)
class ParetoPoint:
    budget: float  # the size budget solved for (bytes)
    size: float  # size of the optimum (bytes)
    omega: float  # its total predicted damage
    bits: dict[str, int]


def _fmt(v: float) -> str:
    return f"{v:,.0f}"


def solve_bits(p: BitProblem, size_budget: float, bops_budget: float | None = None) -> BitSolution:
    """The choice of least total ``Omega`` within the budgets.

    Raises:
        EdgeslimError: no choice fits; the message gives the smallest reachable costs.

    Example:
        >>> p = BitProblem(("a", "b"), (4, 8), np.array([[3.0, 0.0], [1.0, 0.0]]),
        ...                np.array([[2.0, 4.0], [2.0, 4.0]]), np.zeros((2, 2)))
        >>> solve_bits(p, 6.0).bits
        {'a': 8, 'b': 4}
    """
    n_l, n_c = p.omega.shape
    min_size = float(p.size.min(1).sum())
    if size_budget < min_size:
        raise EdgeslimError(
            f"size budget {_fmt(size_budget)} bytes is below the smallest choice, "
            f"{_fmt(min_size)} bytes (every layer at its fewest bits)"
        )
    if bops_budget is not None and bops_budget < float(p.bops.min(1).sum()):
        raise EdgeslimError(
            f"BOPs budget {_fmt(bops_budget)} is below the smallest choice, "
            f"{_fmt(float(p.bops.min(1).sum()))} BOPs"
        )
    one_hot = np.kron(np.eye(n_l), np.ones(n_c))  # sum_c x[l, c] = 1 per layer
    cons = [
        LinearConstraint(one_hot, 1.0, 1.0),
        LinearConstraint(p.size.reshape(1, -1), -np.inf, size_budget),
    ]
    if bops_budget is not None:
        cons.append(LinearConstraint(p.bops.reshape(1, -1), -np.inf, bops_budget))
    # HiGHS's gaps and tolerances are absolute in places: scale Omega (often ~1e-6) to 1
    scale = float(np.abs(p.omega).max()) or 1.0
    with warnings.catch_warnings():
        # scipy does not list HiGHS's mip_abs_gap but passes it on verbatim
        warnings.filterwarnings("ignore", "Unrecognized options", RuntimeWarning)
        res = milp(
            p.omega.reshape(-1).astype(float) / scale,
            constraints=cons,
            integrality=np.ones(n_l * n_c),
            bounds=Bounds(0.0, 1.0),
            options={"mip_rel_gap": 0.0, "mip_abs_gap": 0.0},
        )
    if res.status == 2:
        raise EdgeslimError(
            f"no bit-width choice fits size <= {_fmt(size_budget)} bytes and "
            f"BOPs <= {_fmt(bops_budget or np.inf)} together; loosen one of them"
        )
    if res.x is None:
        raise EdgeslimError(f"the bit-width solver failed: {res.message}")
    choice = tuple(int(i) for i in res.x.reshape(n_l, n_c).argmax(1))
    om, size, bops = p.cost(choice)
    bits = {name: p.choices[c] for name, c in zip(p.layers, choice, strict=True)}
    return BitSolution(bits, choice, om, size, bops)


def size_sweep(p: BitProblem, points: int = 9) -> list[float]:
    """``points`` size budgets evenly spaced from the smallest to the largest model."""
    lo, hi = float(p.size.min(1).sum()), float(p.size.max(1).sum())
    return [float(v) for v in np.linspace(lo, hi, max(points, 2))]


def pareto_front(
    p: BitProblem, size_budgets: Sequence[float], bops_budget: float | None = None
) -> list[ParetoPoint]:
    """Optimal ``(size, Omega)`` for each size budget, dominated points dropped.

    Sorted by size; ``Omega`` strictly decreases along it. Budgets that no choice
    fits (below the smallest model, or beyond the BOPs budget) are skipped.
    """
    sols = []
    for b in sorted(size_budgets):
        try:
            s = solve_bits(p, b, bops_budget)
        except EdgeslimError:
            continue
        sols.append(ParetoPoint(float(b), s.size, s.omega, s.bits))
    front: list[ParetoPoint] = []
    for pt in sorted(sols, key=lambda q: (q.size, q.omega)):
        if front and pt.omega >= front[-1].omega - 1e-12 * max(1.0, abs(front[-1].omega)):
            continue  # as damaging as a smaller point: dominated
        front.append(pt)
    return front
