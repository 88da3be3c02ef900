"""Per-layer ranks as the channel search's MILP: one decision per layer, one option per rank.

The fourth way to choose ranks (issue 15): every factorizable layer is a decision
of :mod:`edgeslim.search.milp`; its options are "keep dense" (option 0: no damage,
no change of cost) and each candidate rank, with

* its measured damage (e.g. the increase of the validation loss with only that
  layer factorized, no fine-tuning);
* its exact change of MACs and parameters (a factorization keeps the layer's input
  and output widths, so the costs of different layers add: no pair terms);
* its change of latency, ``factorized ms - dense ms`` of the layer alone, measured
  on ONNX Runtime at its real input shape.

A candidate that was not measured faster than the dense layer (``faster`` False) is
closed in the MILP (``Problem.allowed``): whatever the budget, a layer is factorized
only into a form the deploy runtime runs faster. This module only builds and solves
the program; measuring the candidates is :mod:`edgeslim.workflows.rank_search`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeslim.core.errors import EdgeslimError
from edgeslim.search.milp import Cost, Problem, Solution, solve

QUANTITIES = ("macs", "params", "latency_ms")


@dataclass(frozen=True)
class RankOption:
    """One candidate form of one layer and what it measured.

    Attributes:
        label: what the option is (``"dense"``, ``"ratio 0.25 rank 12"``, ...).
        damage: measured damage (0 for the dense option).
        macs: change of the model's MACs (negative: fewer).
        params: change of the model's parameters.
        ms: change of the layer's ONNX Runtime time (factorized - dense), ms.
        faster: measured faster than the dense layer (by the caller's margin).
    """

    label: str
    damage: float
    macs: float
    params: float
    ms: float
    faster: bool


@dataclass(frozen=True)
class LayerOptions:
    """A layer and its options; ``options[0]`` is keeping it dense."""

    name: str
    options: tuple[RankOption, ...]


DENSE = RankOption("dense", 0.0, 0.0, 0.0, 0.0, True)


def rank_problem(layers: Sequence[LayerOptions], base: dict[str, float]) -> Problem:
    """The MILP of :mod:`edgeslim.search.milp` for ``layers``.

    ``base`` is each budgeted quantity of the model with every layer dense (keys from
    ``QUANTITIES``). Options beyond a layer's own, and options not measured faster,
    are closed.

    Example:
        >>> fast = RankOption("r4", 0.5, -100, -10, -1.0, True)
        >>> slow = RankOption("r8", 0.1, -50, -5, 0.5, False)
        >>> p = rank_problem([LayerOptions("fc", (DENSE, fast, slow))], {"macs": 200})
        >>> p.allowed.tolist(), p.costs["macs"].single.tolist()
        ([[True, True, False]], [[0.0, -100.0, -50.0]])
    """
    if not layers:
        raise EdgeslimError("the rank search has no layer to choose for")
    for la in layers:
        if not la.options or la.options[0].label != "dense":
            raise EdgeslimError(f"layer {la.name!r}: the first option must be 'dense'")
    unknown = set(base) - set(QUANTITIES)
    if unknown:
        raise EdgeslimError(f"unknown budgeted quantities {sorted(unknown)}; known: {QUANTITIES}")
    d, r = len(layers), max(len(la.options) for la in layers)
    loss = np.zeros((d, r))
    allowed = np.zeros((d, r), dtype=bool)
    single = {k: np.zeros((d, r)) for k in base}
    field_of = {"macs": "macs", "params": "params", "latency_ms": "ms"}
    for i, la in enumerate(layers):
        for j, opt in enumerate(la.options):
            loss[i, j] = opt.damage
            allowed[i, j] = j == 0 or opt.faster
            for k in base:
                single[k][i, j] = getattr(opt, field_of[k])
    costs = {k: Cost(float(base[k]), single[k]) for k in base}
    return Problem(loss, costs, allowed=allowed)


def choose_ranks(
    layers: Sequence[LayerOptions],
    base: dict[str, float],
    budgets: dict[str, float],
    floors: dict[str, float] | None = None,
) -> Solution | None:
    """The least-damage option per layer whose predicted costs fit ``budgets``; None if none.

    ``floors``: lower bounds on the same quantities (spend the budget, see ``solve``).

    Example:
        >>> a = LayerOptions("a", (DENSE, RankOption("r", 1.0, -60, 0, -1, True)))
        >>> b = LayerOptions("b", (DENSE, RankOption("r", 2.0, -60, 0, -1, True)))
        >>> choose_ranks([a, b], {"macs": 100}, {"macs": 50}).choice
        (1, 0)
    """
    missing = (set(budgets) | set(floors or {})) - set(base)
    if missing:
        raise EdgeslimError(f"budgets {sorted(missing)} have no base value")
    return solve(rank_problem(layers, base), budgets, floors)
