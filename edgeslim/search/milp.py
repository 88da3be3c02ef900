"""The policy choice as a mixed-integer linear program (``scipy.optimize.milp``, HiGHS).

Every decision ``d`` (one pruning group, or groups pruned together) takes exactly
one option ``r`` (a channel ratio): binary ``x[d, r]`` with ``sum_r x[d, r] = 1``.
A layer ``l`` may stay in float: binary ``f[l]``. Minimise the predicted damage

    sum_{d,r} loss[d, r] x[d, r]  -  sum_l gain[l] f[l]

subject to, for every budgeted quantity ``k`` (latency, MACs, size),

    base_k + sum single_k[d, r] x[d, r] + sum pair_k[a, b][r, s] y[a, b, r, s]
           + sum fallback_k[l] f[l]  <=  budget_k.

A layer switch ``f[l]`` is either "keep this layer in float" (``gain`` > 0: damage
avoided, latency and size paid) or "give its weights fewer bits" (``gain`` < 0:
damage added, size saved), so bit-width is one more decision beside the channel
ratios (HAWQ-V3's integer program, Yao et al. 2021, joined to the pruning one);
``exclusive`` sets allow at most one switch per layer.

``y[a, b, r, s]`` is the product ``x[a, r] x[b, s]`` for decisions that share a
layer (a conv's input channels belong to one group, its outputs to another, so
its MACs are bilinear in the two keep fractions). The product is linearised by
its marginals, ``sum_s y[a,b,r,s] = x[a,r]`` and ``sum_r y[a,b,r,s] = x[b,s]``,
which with one-hot binary ``x`` leave exactly one feasible ``y``: it can stay
continuous. Costs that are at most bilinear across decisions (MACs, parameters)
are therefore modelled exactly, not approximated (as in AMC/NetAdapt-style
budgets, He et al. 2018, Yang et al. 2018, but solved to optimality instead of
greedily).

``allowed[d, r]`` (optional) says which options exist: a decision with fewer
options than the others (a layer with fewer rank candidates), or an option ruled
out before the solve (a factorized form measured slower than the dense layer),
has ``x[d, r]`` bounded to 0 there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from edgeslim.core.errors import EdgeslimError

Pair = tuple[int, int]


@dataclass(frozen=True)
class Cost:
    """One budgeted quantity as a function of the choices.

    ``single[d, r]`` is the change from ``base`` when only decision ``d`` takes
    option ``r``; ``pair[(a, b)][r, s]`` the interaction when both do (zero where
    either option is the unpruned one); ``fallback[l]`` the change when layer
    ``l`` stays in float.
    """

    base: float
    single: np.ndarray  # [D, R]
    pair: dict[Pair, np.ndarray] = field(default_factory=dict)  # [R, R] each
    fallback: np.ndarray | None = None  # [L]


@dataclass(frozen=True)
class Problem:
    """Predicted damage and costs of every option (see the module docstring)."""

    loss: np.ndarray  # [D, R] predicted damage of option r for decision d
    costs: dict[str, Cost]
    # [L] damage each layer switch avoids: keeping a layer in float (positive), or giving
    # it fewer weight bits (negative: damage added, paid for by its size or time saving)
    gain: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # sets of switch indices of which at most one may be on (one layer's float and 4-bit)
    exclusive: tuple[tuple[int, ...], ...] = ()
    allowed: np.ndarray | None = None  # [D, R] bool; False: option r is not open to decision d

    def __post_init__(self) -> None:
        if self.allowed is not None:
            if self.allowed.shape != self.loss.shape:
                raise EdgeslimError(
                    f"allowed has shape {self.allowed.shape}, the options {self.loss.shape}"
                )
            if not self.allowed.any(axis=1).all():
                raise EdgeslimError("every decision needs at least one allowed option")

    @property
    def shape(self) -> tuple[int, int, int]:
        d, r = self.loss.shape
        return d, r, len(self.gain)

    def pairs(self) -> list[Pair]:
        return sorted({p for c in self.costs.values() for p in c.pair})


@dataclass(frozen=True)
class Solution:
    choice: tuple[int, ...]  # option index per decision
    fallback: tuple[bool, ...]  # float or not, per fallback candidate
    objective: float  # predicted damage (``evaluate``'s first value)
    predicted: dict[str, float]  # predicted value of every cost


def evaluate(
    p: Problem, choice: tuple[int, ...], fallback: tuple[bool, ...] = ()
) -> tuple[float, dict[str, float]]:
    """Predicted damage and costs of one policy, straight from the definitions."""
    f = np.asarray(fallback, dtype=bool) if len(fallback) else np.zeros(len(p.gain), bool)
    if any(f[list(s)].sum() > 1 for s in p.exclusive):
        raise EdgeslimError("policy turns on two exclusive switches of one layer")
    obj = sum(float(p.loss[d, r]) for d, r in enumerate(choice)) - float(p.gain[f].sum())
    costs = {}
    for k, c in p.costs.items():
        v = c.base + sum(float(c.single[d, r]) for d, r in enumerate(choice))
        v += sum(float(m[choice[a], choice[b]]) for (a, b), m in c.pair.items())
        if c.fallback is not None and f.any():
            v += float(c.fallback[f].sum())
        costs[k] = v
    return obj, costs


def solution_of(p: Problem, choice: tuple[int, ...], fallback: tuple[bool, ...] = ()) -> Solution:
    """A given policy as a :class:`Solution` (its predicted damage and costs)."""
    fallback = tuple(fallback) or (False,) * len(p.gain)
    return Solution(tuple(choice), fallback, *evaluate(p, choice, fallback))


def _layout(p: Problem) -> tuple[int, int, int, list[Pair]]:
    d, r, n_fb = p.shape
    pairs = p.pairs()
    return d * r, len(pairs) * r * r, n_fb, pairs


def _cost_row(p: Problem, k: str) -> np.ndarray:
    nx, ny, nf, pairs = _layout(p)
    _, r, _ = p.shape
    c = p.costs[k]
    row = np.zeros(nx + ny + nf)
    row[:nx] = c.single.ravel()
    for i, pr in enumerate(pairs):
        if pr in c.pair:
            row[nx + i * r * r : nx + (i + 1) * r * r] = c.pair[pr].ravel()
    if c.fallback is not None and nf:
        row[nx + ny :] = c.fallback
    return row


def _structure(p: Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-hot and pair-marginal equality rows ``A v = b`` and the integrality vector."""
    d, r, _ = p.shape
    nx, ny, nf, pairs = _layout(p)
    rows, rhs = [], []
    for i in range(d):
        row = np.zeros(nx + ny + nf)
        row[i * r : (i + 1) * r] = 1
        rows.append(row)
        rhs.append(1.0)
    for i, (a, b) in enumerate(pairs):
        off = nx + i * r * r
        for o in range(r):
            row = np.zeros(nx + ny + nf)  # sum_s y[a,b,o,s] = x[a,o]
            row[off + o * r : off + (o + 1) * r] = 1
            row[a * r + o] = -1
            rows.append(row)
            row = np.zeros(nx + ny + nf)  # sum_r y[a,b,r,o] = x[b,o]
            row[off + o : off + r * r : r] = 1
            row[b * r + o] = -1
            rows.append(row)
            rhs += [0.0, 0.0]
    integrality = np.concatenate([np.ones(nx), np.zeros(ny), np.ones(nf)])
    return np.array(rows), np.array(rhs), integrality


def _run(
    p: Problem, c: np.ndarray, extra: list[LinearConstraint], ub_f: float | np.ndarray
) -> Solution | None:
    d, r, _ = p.shape
    nx, ny, nf, _ = _layout(p)
    a_eq, b_eq, integrality = _structure(p)
    open_x = np.ones(nx) if p.allowed is None else p.allowed.ravel().astype(float)
    ub = np.broadcast_to(np.asarray(ub_f, float), (nf,))
    upper = np.concatenate([open_x, np.ones(ny), ub])
    constraints = [LinearConstraint(a_eq, b_eq, b_eq), *extra]
    if p.exclusive:  # sum of each set's switches <= 1
        rows = np.zeros((len(p.exclusive), nx + ny + nf))
        for i, s in enumerate(p.exclusive):
            rows[i, [nx + ny + j for j in s]] = 1
        constraints.append(LinearConstraint(rows, -np.inf, 1.0))
    res = milp(
        c,
        constraints=constraints,
        integrality=integrality,
        bounds=Bounds(np.zeros(nx + ny + nf), upper),
    )
    if res.status == 2:  # infeasible
        return None
    if res.x is None:
        raise EdgeslimError(f"the policy solver failed: {res.message}")
    choice = tuple(int(i) for i in res.x[:nx].reshape(d, r).argmax(1))
    fallback = tuple(bool(v > 0.5) for v in res.x[nx + ny :])
    obj, predicted = evaluate(p, choice, fallback)
    return Solution(choice, fallback, obj, predicted)


def solve(
    p: Problem, budgets: dict[str, float], floors: dict[str, float] | None = None
) -> Solution | None:
    """The least-damage policy whose predicted costs fit ``budgets``; None if none does.

    ``floors`` (optional) are lower bounds on the same quantities: a budget alone is a
    ceiling, and where compressing more costs no measurable damage the least-damage
    policy may lie far below it; ``floors`` make the policy spend (most of) the budget.

    Example:
        >>> p = Problem(np.array([[0.0, 1.0], [0.0, 3.0]]),
        ...             {"ms": Cost(10.0, np.array([[0.0, -4.0], [0.0, -5.0]]))})
        >>> solve(p, {"ms": 6.0}).choice, solve(p, {"ms": 0.5})
        ((1, 0), None)
        >>> q = Problem(np.array([[0.0, 0.5, 0.1]]),  # the deeper option measured less damage
        ...             {"ms": Cost(10.0, np.array([[0.0, -2.0, -8.0]]))})
        >>> solve(q, {"ms": 9.0}).choice, solve(q, {"ms": 9.0}, floors={"ms": 5.0}).choice
        ((2,), (1,))
    """
    nx, ny, nf, _ = _layout(p)
    c = np.concatenate([p.loss.ravel(), np.zeros(ny), -p.gain])
    floors = floors or {}
    unknown = set(floors) - set(p.costs)
    if unknown:
        raise EdgeslimError(f"floors {sorted(unknown)} are not costs of the problem")
    extra = []
    for k in dict.fromkeys([*budgets, *floors]):
        ref = budgets.get(k, floors.get(k))
        scale = max(abs(ref), 1e-12)  # rows in units of the budget: HiGHS likes O(1)
        row = _cost_row(p, k) / scale
        lo = (floors[k] - p.costs[k].base) / scale if k in floors else -np.inf
        hi = (budgets[k] - p.costs[k].base) / scale if k in budgets else np.inf
        extra.append(LinearConstraint(row[None], lo, hi))
    return _run(p, c, extra, 1.0)


def most_compressed(p: Problem, budgets: dict[str, float]) -> Solution:
    """The policy with the smallest predicted costs (sum of cost/budget), nothing in float.

    Switches that add damage (fewer weight bits) may be taken: they exist to save cost.
    """
    c = sum(_cost_row(p, k) / max(abs(b), 1e-12) for k, b in budgets.items())
    sol = _run(p, np.asarray(c, dtype=float), [], (p.gain < 0).astype(float))
    if sol is None:  # cannot happen: every one-hot choice is feasible without budgets
        raise EdgeslimError("the policy solver found no policy at all")
    return sol
