"""A per-layer policy (channel ratio per prunable group, layers kept in float) and its application.

A policy is expressed in the pruning API's own terms: ``PruneConfig.overrides``,
an ordered map from a layer name to a ratio, first match wins (see
:mod:`edgeslim.prune.allocate`). Each :class:`Decision` is one override key: an
output layer that belongs to one dependency group only, so the override sets
exactly that group. Groups that no unique key can single out share a decision.
Candidates are planned with the same :func:`~edgeslim.prune.allocate.allocate`
call that :func:`~edgeslim.prune.structured.prune_` makes when the policy is
finally applied, so what was measured is what gets pruned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from edgeslim.core.select import matches
from edgeslim.graph.groups import DependencyGraph
from edgeslim.prune.allocate import Plan, allocate, group_ratio
from edgeslim.prune.config import PruneConfig
from edgeslim.prune.structured import PruneResult, prune_


@dataclass(frozen=True)
class Decision:
    """One override key and the dependency groups it sets."""

    key: str  # layer name used as the override pattern
    groups: tuple[int, ...]
    channels: int  # units of its first group (pruned + fixed)


@dataclass(frozen=True)
class Policy:
    """Option index per decision (into ``ratios``), the layers kept in float, and the layers
    whose weights take fewer than 8 bits (applied by the quantize stage, not here)."""

    ratios: tuple[float, ...]  # one per decision
    float_layers: tuple[str, ...] = ()
    low_bits: tuple[tuple[str, int], ...] = ()  # (layer, weight bits)


def _outs(graph: DependencyGraph, gi: int) -> list[str]:
    return [layer for layer, kind in graph.groups[gi].spaces if kind == "out"]


def decisions(graph: DependencyGraph, base: PruneConfig) -> list[Decision]:
    """The decisions of ``graph``: prunable, not ignored groups, keyed by a unique output layer."""
    prunable = [
        gi
        for gi, g in enumerate(graph.groups)
        if g.units and group_ratio(g, replace(base, overrides=()), 0.0) is not None
    ]
    owners: dict[str, set[int]] = {}
    for gi in range(len(graph.groups)):
        for o in _outs(graph, gi):
            owners.setdefault(o, set()).add(gi)
    keys: list[str] = []
    for gi in prunable:
        outs = _outs(graph, gi)
        unique = [o for o in outs if owners[o] == {gi}]
        key = (unique or outs or graph.groups[gi].layers)[0]
        if key not in keys:
            keys.append(key)
    members: dict[str, list[int]] = {k: [] for k in keys}
    for gi in prunable:  # the first key that matches an output wins, as in allocate
        outs = _outs(graph, gi)
        first = next((k for k in keys if any(matches(o, k) for o in outs)), None)
        if first is not None:
            members[first].append(gi)
    return [Decision(k, tuple(g), graph.groups[g[0]].size) for k, g in members.items() if g]


def policy_config(base: PruneConfig, ds: list[Decision], ratios: Iterable[float]) -> PruneConfig:
    """``base`` with ratio 0 everywhere except the decisions' overrides."""
    over = tuple((d.key, float(r)) for d, r in zip(ds, ratios, strict=True))
    return replace(
        base,
        ratio=0.0,
        target_macs=None,
        target_latency_ms=None,
        global_ranking=False,
        overrides=over,
    )


def plan_for(
    graph: DependencyGraph,
    scores: list[np.ndarray],
    base: PruneConfig,
    ds: list[Decision],
    ratios: Iterable[float],
) -> Plan:
    """Units removed by ``ratios`` (the same allocation ``prune_`` will make)."""
    return allocate(graph, scores, policy_config(base, ds, ratios), 0.0)


def kept(graph: DependencyGraph, plan: Plan, d: Decision) -> int:
    """Units of ``d``'s first group that ``plan`` keeps."""
    g = d.groups[0]
    return graph.groups[g].size - len(plan.get(g, ()))


def apply_(
    model: nn.Module,
    example: torch.Tensor,
    base: PruneConfig,
    ds: list[Decision],
    policy: Policy,
    data: Iterable | None = None,
) -> PruneResult:
    """Prune ``model`` in place to ``policy`` (checked against the masked dense model)."""
    return prune_(model, example, policy_config(base, ds, policy.ratios), data)
