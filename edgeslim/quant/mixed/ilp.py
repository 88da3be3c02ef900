"""HAWQ-V3 bit-width selection as an integer linear program (``scipy.optimize.milp``, HiGHS).

Yao et al., "HAWQ-V3: Dyadic Neural Network Quantization", ICML 2021
(arXiv:2011.10680), Section 3.4, eq. (6): every layer ``l`` takes exactly one
bit-width choice ``c`` (binary ``x[l, c]``, ``sum_c x[l, c] = 1``); minimise the
total sensitivity ``sum Omega[l, c] x[l, c]`` subject to

    sum size[l, c] x[l, c] <= size budget   (bytes of weights)
    sum bops[l, c] x[l, c] <= BOPs budget   (optional; bits_w * bits_a * MACs)
    sum lat[l, c] x[l, c]  <= latency budget (optional; ms per layer measured on the runtime)

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
    latency: np.ndarray | None = None  # ms of each layer at each choice, measured

    def __post_init__(self) -> None:
        shape = (len(self.layers), len(self.choices))
        names = ("omega", "size", "bops") + (("latency",) if self.latency is not None else ())
        for name in names:
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

    def latency_of(self, choice: Sequence[int]) -> float | None:
        """Summed measured ms of a choice index per layer (None without latencies)."""
        if self.latency is None:
            return None
        return float(self.latency[np.arange(len(self.layers)), np.asarray(choice)].sum())


@dataclass(frozen=True)
class BitSolution:
    bits: dict[str, int]  # chosen bit-width per layer
    choice: tuple[int, ...]  # index into ``BitProblem.choices`` per layer
    omega: float  # total predicted damage
    size: float  # bytes of weights
    bops: float
    latency: float | None = None  # summed measured ms of the layers (with latencies)


@dataclass(frozen=True)
class ParetoPoint:
    budget: float  # the size budget solved for (bytes)
    size: float  # size of the optimum (bytes)
    omega: float  # its total predicted damage
    bits: dict[str, int]


class LatencyImpossible(EdgeslimError):
    """No choice meets the latency budget; ``closest`` is the fastest choice within the size."""

    def __init__(self, message: str, closest: BitSolution) -> None:
        super().__init__(message)
        self.closest = closest


def _fmt(v: float) -> str:
    return f"{v:,.0f}"


def solve_bits(
    p: BitProblem,
    size_budget: float,
    bops_budget: float | None = None,
    latency_budget: float | None = None,
) -> BitSolution:
    """The choice of least total ``Omega`` within the budgets.

    Raises:
        LatencyImpossible: the latency budget cannot be met within the other budgets;
            its ``closest`` is the fastest choice that meets them.
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
    if latency_budget is not None:
        if p.latency is None:
            raise EdgeslimError("a latency budget needs the layers' measured latencies")
        fastest = _milp(p, p.latency, cons)
        if fastest is None:
            raise EdgeslimError(
                f"no bit-width choice fits size <= {_fmt(size_budget)} bytes and "
                f"BOPs <= {_fmt(bops_budget or np.inf)} together; loosen one of them"
            )
        best = p.latency_of(fastest)
        if best > latency_budget:
            closest = _solution(p, fastest)
            raise LatencyImpossible(
                f"latency budget {latency_budget:.3f} ms is impossible: the fastest choice "
                f"within the other budgets takes {best:.3f} ms (layers measured alone)",
                closest,
            )
        cons.append(LinearConstraint(p.latency.reshape(1, -1), -np.inf, latency_budget))
    choice = _milp(p, p.omega, cons)
    if choice is None:
        raise EdgeslimError(
            f"no bit-width choice fits size <= {_fmt(size_budget)} bytes and "
            f"BOPs <= {_fmt(bops_budget or np.inf)} together; loosen one of them"
        )
    return _solution(p, choice)


def _solution(p: BitProblem, choice: tuple[int, ...]) -> BitSolution:
    om, size, bops = p.cost(choice)
    bits = {name: p.choices[c] for name, c in zip(p.layers, choice, strict=True)}
    return BitSolution(bits, choice, om, size, bops, p.latency_of(choice))


def _milp(p: BitProblem, objective: np.ndarray, cons: list) -> tuple[int, ...] | None:
    """The one-hot choice minimising ``objective`` under ``cons``; None when infeasible."""
    n_l, n_c = p.omega.shape
    # HiGHS's gaps and tolerances are absolute in places: scale the objective to 1
    scale = float(np.abs(objective).max()) or 1.0
    with warnings.catch_warnings():
        # scipy does not list HiGHS's mip_abs_gap but passes it on verbatim
        warnings.filterwarnings("ignore", "Unrecognized options", RuntimeWarning)
        res = milp(
            objective.reshape(-1).astype(float) / scale,
            constraints=cons,
            integrality=np.ones(n_l * n_c),
            bounds=Bounds(0.0, 1.0),
            options={"mip_rel_gap": 0.0, "mip_abs_gap": 0.0},
        )
    if res.status == 2:
        return None
    if res.x is None:
        raise EdgeslimError(f"the bit-width solver failed: {res.message}")
    return tuple(int(i) for i in res.x.reshape(n_l, n_c).argmax(1))


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
