"""Pruning criteria: small pure functions from per-channel tensors to scores (higher = keep).

A criterion never sees a layer: the graph hands it per-channel *rows* (a conv's
filter, a Linear's output row, a BN's scale, an activation statistic), one
matrix per layer space, and it returns one score per row. Aggregation over the
coupled layers of a group happens in :mod:`edgeslim.prune.importance`.

Each criterion is one file that registers itself in :data:`CRITERIA`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.registry import Registry

Rows = dict[str, torch.Tensor]  # "weight", "taylor", "fisher", "scale", "apoz", "mean_act", ...


@dataclass(frozen=True)
class Criterion:
    """A scoring rule.

    Attributes:
        fn: ``fn(rows) -> scores[n]`` on one layer space's rows.
        needs: "weights", "gradients" (a few labelled batches) or "activations" (batches).
        view: which rows it reads: "weight", "scale" (BN gamma) or "activation".
        spaces: "out" (a layer's own channels) or "all" (also consumers' input columns).
        reduce: how a unit's scores in the group's spaces combine: "sum" adds the raw
            row scores of every coupled parameter (a group norm: a 3x3 conv's filter
            outweighs a BN scale), "mean" divides each space by its mean first (every
            layer weighs the same). See :mod:`edgeslim.prune.importance`.
        summary: one line for ``--help``.
    """

    fn: Callable[[Rows], torch.Tensor]
    needs: str = "weights"
    view: str = "weight"
    spaces: str = "out"
    reduce: str = "mean"
    summary: str = ""

    def __post_init__(self) -> None:
        if self.reduce not in ("sum", "mean"):
            raise EdgeslimError(f"reduce must be 'sum' or 'mean', got {self.reduce!r}")


CRITERIA: Registry[Criterion] = Registry("criterion")


def register_criterion(name: str, criterion: Criterion) -> Criterion:
    CRITERIA.register(name, criterion)
    return criterion


from edgeslim.prune.criteria import (  # noqa: E402,F401  (each file registers itself)
    activation,
    apoz,
    bn_scale,
    entropy,
    fpgm,
    l1,
    l2,
    obd,
    random,
    taylor,
)

__all__ = ["CRITERIA", "Criterion", "Rows", "register_criterion"]
