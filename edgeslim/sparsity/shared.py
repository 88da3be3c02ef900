"""Shared-pattern sparsity: the filters of a 3×3 conv form groups, each with ONE k-tap pattern.

A variant of R-TOSS (:mod:`edgeslim.sparsity.rtoss`) made for speed. R-TOSS gives
every 3×3 kernel (filter × input channel) its own adjacent pattern, which no dense
GEMM can use. Here every filter of a group keeps the same ``k`` adjacent taps
(:func:`edgeslim.sparsity.patterns.adjacent_patterns`) across all its input channels,
so the conv is ``sum over groups and taps of a shifted input @ W[group, :, tap]``:
``k`` dense GEMMs per group (:class:`edgeslim.sparsity.pattern_conv.PatternConv2d`).
Groups and patterns are chosen by kept energy (:mod:`edgeslim.sparsity.pattern_groups`).

The filters are then reordered so each group is contiguous. The permutation is
absorbed through the dependency graph (:func:`edgeslim.graph.groups.build_dependency_graph`)
as channel pruning does: the conv's output rows, its BN, the next layers' input
columns, all permuted together, so the model computes exactly what it did.
Output channels that are coupled (the convs and shortcut feeding one residual
add are one dependency group) share ONE permutation: their groups are chosen
jointly, each group holding one pattern per coupled conv. A conv whose channels
cannot move (pinned, e.g. wired to the model's output) gets its groups without a
permutation; the executor then sees them as runs (and keeps whichever form is faster).

The saved model keeps the permuted weights and the masks; a reload replays the
masks only (the permutation is in the weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import register_method
from edgeslim.core.modes import eval_mode
from edgeslim.graph.groups import DependencyGraph, Group, build_dependency_graph
from edgeslim.graph.layers import slice_
from edgeslim.sparsity.mask import add_mask_, base_type, mask_of, sparsity_of
from edgeslim.sparsity.method import MaskMethod, SparsityConfig
from edgeslim.sparsity.pattern_groups import group_filters, run_layout, tap_energy
from edgeslim.sparsity.patterns import adjacent_patterns, pattern_matrix


@dataclass(frozen=True)
class SharedPatternConfig(SparsityConfig):
    """Groups of filters sharing one ``entries``-tap 3×3 pattern (2, 3 or 4 taps).

    Args:
        entries: taps kept per 3×3 kernel (sparsity ``1 - entries / 9``).
        groups: filter groups per conv (per coupled set of convs).
        diagonal: count corner-touching taps as adjacent.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from edgeslim.core.methods import apply_
        >>> m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
        >>> m, rec = apply_(m, SharedPatternConfig(2, groups=2), calib=[torch.randn(1, 3, 9, 9)])
        >>> round(rec.details["sparsity"], 3), len(rec.details["layouts"]["0"]) <= 2
        (0.778, True)
    """

    kind: ClassVar[str] = "patterns"
    entries: int = 3
    groups: int = 4
    diagonal: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.entries <= 8:
            raise EdgeslimError(f"a shared pattern keeps 1..8 taps of 3x3, got {self.entries}")
        if self.groups < 1:
            raise EdgeslimError(f"shared patterns need >= 1 group, got {self.groups}")

    @property
    def sparsity(self) -> float:
        return 1.0 - self.entries / 9


def is_pattern_conv(module: nn.Module) -> bool:
    """A plain 3×3 conv (groups 1, dilation 1, zero padding) that shared patterns can take."""
    return (
        base_type(module) is nn.Conv2d
        and tuple(module.kernel_size) == (3, 3)
        and module.groups == 1
        and tuple(module.dilation) == (1, 1)
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


def example_of(calib) -> torch.Tensor:
    """The first input batch of ``calib`` (batches are ``x`` or ``(x, y, ...)``)."""
    batch = next(iter(calib), None) if calib is not None else None
    x = batch[0] if isinstance(batch, list | tuple) else batch
    if not isinstance(x, torch.Tensor):
        raise EdgeslimError(
            "shared patterns permute channels through the dependency graph, which is traced "
            "on an example: pass calib=[example input]"
        )
    return x


def permute_group_(model: nn.Module, graph: DependencyGraph, group: Group, order) -> None:
    """Move unit ``order[j]`` of ``group`` into unit slot ``j`` in every space it touches."""
    for layer, kind in group.spaces:
        perm = np.arange(graph.space_sizes[(layer, kind)])
        for j, src in enumerate(order):
            dst_pos, src_pos = group.units[j][(layer, kind)], group.units[int(src)][(layer, kind)]
            if len(dst_pos) != len(src_pos):
                raise EdgeslimError(f"{layer}: channel units of unequal width cannot be permuted")
            perm[dst_pos] = src_pos
        if not np.array_equal(perm, np.arange(len(perm))):
            slice_(model.get_submodule(layer), graph.specs[layer], kind, torch.as_tensor(perm))


def _unit_energy(e: torch.Tensor, group: Group, layer: str) -> torch.Tensor:
    return torch.stack([e[torch.as_tensor(u[(layer, "out")])].sum(0) for u in group.units])


@register_method(SharedPatternConfig, "shared_pattern_sparsity")
class SharedPatternSparsity(MaskMethod):
    def supports(self, module: nn.Module) -> bool:
        return is_pattern_conv(module)

    def apply_(self, model, config, layers, calib):
        picked = {n: (m, c) for n, m, c in layers.select(model, self.supports)}
        if any(mask_of(m) is not None for m, _ in picked.values()):
            raise EdgeslimError("shared patterns permute weights: apply them to an unmasked model")
        x = example_of(calib)
        with eval_mode(model), torch.no_grad():
            graph = build_dependency_graph(model, x)
        taps: dict[str, torch.Tensor] = {}  # layer -> (out, 9) 0/1 rows, after permuting
        done: set[str] = set()
        for group in graph.groups:
            convs = [n for n, k in group.spaces if k == "out" and n in picked and n not in done]
            if not convs:
                continue
            cfg = picked[convs[0]][1]
            convs = [n for n in convs if picked[n][1] == cfg]  # one config per coupled set
            whole = all(
                len(np.concatenate([u[(n, "out")] for u in group.units]))
                == graph.space_sizes[(n, "out")]
                for n in convs
            )
            if not whole or group.fixed:
                continue  # partly pinned: handled per layer below, unpermuted
            pats = pattern_matrix(adjacent_patterns(cfg.entries, cfg.diagonal))
            mods = {n: model.get_submodule(n) for n in convs}
            energies = [_unit_energy(tap_energy(mods[n].weight), group, n) for n in convs]
            assign, chosen = group_filters(energies, pats, cfg.groups)
            order = torch.argsort(assign, stable=True)
            permute_group_(model, graph, group, order.tolist())
            for c, n in enumerate(convs):
                rows = torch.zeros(graph.space_sizes[(n, "out")], 9)
                for j, src in enumerate(order.tolist()):
                    rows[torch.as_tensor(group.units[j][(n, "out")])] = pats[chosen[assign[src], c]]
                taps[n] = rows
                done.add(n)
        for n, (mod, cfg) in picked.items():
            if n not in taps:  # not permutable: groups chosen alone, left where they are
                pats = pattern_matrix(adjacent_patterns(cfg.entries, cfg.diagonal))
                assign, chosen = group_filters([tap_energy(mod.weight)], pats, cfg.groups)
                taps[n] = pats[chosen[assign, 0]]
        layouts = {}
        for n, (mod, cfg) in picked.items():
            rows = taps[n]
            mask = rows.reshape(-1, 1, 3, 3).expand_as(mod.weight).contiguous()
            add_mask_(mod, mask)
            layers.done(n, cfg)
            layouts[n] = [[size, list(t)] for size, t in run_layout(rows)]
        details = {
            "kind": config.kind,
            "layouts": layouts,
            "permuted": sorted(done),
            "sparsity": sparsity_of(model, list(layers.applied)),
        }
        return model, details

    def masks(self, weights, configs):
        raise EdgeslimError("shared patterns are fixed once applied; they have no schedule")
