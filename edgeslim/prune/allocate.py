"""Allocation: how many units each group loses, and which.

- uniform: every group loses ``ratio`` of its units (its lowest-scoring ones);
- global ranking: scores normalised per group, the lowest ``ratio`` of all units go,
  with at most ``max_ratio`` of any one group;
- per-layer overrides (first match wins) and ignored layers (their output channels
  stay, their inputs may shrink), matched by exact name or full regex;
- ``round_to``: kept widths are multiples of it in *channels* (the runtime's channel
  blocks, see :mod:`edgeslim.prune.align`): the nearest multiple, at least one; a
  group smaller than that keeps all its units. A unit of ``k`` channels (an attention
  head) rounds to multiples of ``round_to / gcd(round_to, k)`` units;
  ``min_channels`` floor.
"""

from __future__ import annotations

import math

import numpy as np

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.select import matches, matches_any
from edgeslim.graph.groups import DependencyGraph, Group
from edgeslim.prune.config import PruneConfig

Plan = dict[int, np.ndarray]  # group index -> unit indices to remove


def _outs(group: Group) -> list[str]:
    return [layer for layer, kind in group.spaces if kind == "out"]


def group_ratio(group: Group, cfg: PruneConfig, ratio: float) -> float | None:
    """The ratio for ``group``: None if ignored, an override, else ``ratio``."""
    outs = _outs(group)
    if any(matches_any(o, cfg.ignore) for o in outs):
        return None
    for pattern, r in cfg.overrides:
        if any(matches(o, pattern) for o in outs):
            return r
    return ratio


def keep_count(
    size: int, removable: int, ratio: float, cfg: PruneConfig, unit_channels: int = 1
) -> int:
    """Units to keep out of ``size`` (``removable`` of them prunable)."""
    keep = size - int(math.floor(size * ratio + 1e-9))
    keep = _round(keep, size, cfg, unit_channels)
    return max(keep, size - removable)


def unit_channels(group: Group) -> int:
    """Channels one unit of ``group`` spans (1 for a channel, the head size for a head)."""
    if not group.units:
        return 1
    return max(1, min(len(pos) for pos in group.units[0].values()))


def _round(keep: int, size: int, cfg: PruneConfig, unit_channels: int = 1) -> int:
    keep = max(keep, cfg.min_channels)
    if not isinstance(cfg.round_to, int):
        raise EdgeslimError("round_to='auto' must be resolved before allocation (prune does)")
    r = cfg.round_to // math.gcd(cfg.round_to, unit_channels)
    if r > 1:
        keep = max(r, int(round(keep / r)) * r)
    return min(keep, size)


def allocate(
    graph: DependencyGraph, scores: list[np.ndarray], cfg: PruneConfig, ratio: float
) -> Plan:
    """Choose the units to remove at channel ``ratio`` (uniform or global)."""
    plan: Plan = {}
    ranked: list[tuple[float, int, int]] = []
    for gi, (group, s) in enumerate(zip(graph.groups, scores, strict=True)):
        r = group_ratio(group, cfg, ratio)
        if r is None or not len(s):
            continue
        if cfg.global_ranking and not any(
            any(matches(o, p) for o in _outs(group)) for p, _ in cfg.overrides
        ):
            norm = s / (np.abs(s).mean() + 1e-12)
            ranked += [(float(v), gi, u) for u, v in enumerate(norm)]
            continue
        keep = keep_count(group.size, len(s), r, cfg, unit_channels(group))
        n_drop = group.size - keep
        if n_drop > 0:
            plan[gi] = np.sort(np.argsort(s, kind="stable")[:n_drop])
    if ranked:
        plan.update(_global(graph, ranked, cfg, ratio))
    return plan


def _global(graph: DependencyGraph, ranked: list, cfg: PruneConfig, ratio: float) -> Plan:
    gids = sorted({gi for _, gi, _ in ranked})
    total = sum(graph.groups[g].size for g in gids)
    budget = int(math.floor(total * ratio + 1e-9))
    cap = {
        g: min(
            len(graph.groups[g].units),
            graph.groups[g].size
            - max(cfg.min_channels, math.ceil(graph.groups[g].size * (1 - cfg.max_ratio))),
        )
        for g in gids
    }
    chosen: dict[int, list[int]] = {g: [] for g in gids}
    for _, gi, u in sorted(ranked):
        if budget <= 0:
            break
        if len(chosen[gi]) < cap[gi]:
            chosen[gi].append(u)
            budget -= 1
    plan: Plan = {}
    scores = {g: [(v, u) for v, gg, u in ranked if gg == g] for g in gids}
    for g, units in chosen.items():
        size = graph.groups[g].size
        keep = _round(size - len(units), size, cfg, unit_channels(graph.groups[g]))
        n_drop = max(0, min(size - keep, len(units)))
        if n_drop:
            order = [u for _, u in sorted(scores[g])][:n_drop]
            plan[g] = np.sort(np.asarray(order))
    return plan
