"""R-TOSS kernel-pattern sparsity, 3EP and 2EP (Balasubramaniam et al. 2023).

* 3×3 kernels keep ``entries`` adjacent positions (:mod:`edgeslim.sparsity.patterns`),
  the best-fitting pattern by L2 norm from a dictionary reduced to the
  ``dictionary`` most used patterns over all selected layers (21 in the paper);
* 1×1 kernels are regrouped nine at a time (in the weight's flat order) into
  temporary 3×3 matrices and pattern-pruned the same way; the remainder of
  fewer than nine is pruned;
* no connectivity pruning (whole kernels are never removed).

Other kernel sizes and Linear layers are left dense (``skipped`` in the record).
A 3×3 layer is then exactly ``1 - entries / 9`` sparse (77.8 % for 2EP).

With ``parent_child=True`` (the default, as in the paper) a depth-first search
over the dependency graph (:mod:`edgeslim.sparsity.rtoss_groups`) finds parent
layers and their children; patterns are chosen on the parents (and the
dictionary reduced over them), and each child takes its parent's mask. The
record lists the groups. ``parent_child=False`` chooses patterns on every layer.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import register_method
from edgeslim.sparsity.mask import add_mask_, base_type, sparsity_of
from edgeslim.sparsity.method import MaskMethod, SparsityConfig
from edgeslim.sparsity.patterns import (
    adjacent_patterns,
    best_patterns,
    pattern_matrix,
    reduce_dictionary,
)
from edgeslim.sparsity.rtoss_groups import example_input, parent_child_groups, successors


@dataclass(frozen=True)
class RTossConfig(SparsityConfig):
    """Kernel-pattern sparsity: ``entries=3`` is 3EP, ``entries=2`` is 2EP.

    Args:
        entries: nonzeros kept per 3×3 kernel (2 or 3 in the paper).
        dictionary: how many of the most used patterns are kept (21 in the paper).
        diagonal: count corner-touching positions as adjacent.
        parent_child: children found by a depth-first search over the dependency
            graph reuse their parent's patterns (the paper); False: every layer
            chooses its own. The graph is traced on the first batch of ``calib``,
            else on a ``(1, C, 32, 32)`` input; when that guess does not fit the
            model, patterns are chosen per layer and the record says why
            (``parent_child_note``).

    Example:
        >>> from torch import nn
        >>> from edgeslim.core.methods import apply_
        >>> m, rec = apply_(nn.Sequential(nn.Conv2d(4, 4, 3)), RTossConfig(entries=2))
        >>> round(rec.details["sparsity"], 3)
        0.778
    """

    kind: ClassVar[str] = "rtoss"
    entries: int = 3
    dictionary: int = 21
    diagonal: bool = False
    parent_child: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.entries <= 8:
            raise EdgeslimError(f"R-TOSS keeps 1..8 entries per 3x3 kernel, got {self.entries}")
        if self.dictionary < 1:
            raise EdgeslimError(f"the pattern dictionary needs >= 1 pattern, got {self.dictionary}")

    @property
    def name(self) -> str:
        return f"rtoss-{self.entries}ep"


def as_kernels(w: Tensor) -> tuple[Tensor, int]:
    """``w`` as ``(K, 9)`` rows and how many trailing weights are left over (1×1 only)."""
    if tuple(w.shape[2:]) == (3, 3):
        return w.reshape(-1, 9), 0
    flat = w.reshape(-1)
    full = flat.numel() // 9 * 9
    return flat[:full].reshape(-1, 9), flat.numel() - full


def from_kernels(rows: Tensor, rest: int, like: Tensor) -> Tensor:
    """Inverse of :func:`as_kernels` for masks; the ``rest`` leftover weights are pruned (0)."""
    flat = torch.cat([rows.reshape(-1), rows.new_zeros(rest)])
    return flat.reshape(like.shape)


def rtoss_masks(
    weights: dict[str, Tensor],
    cfg: RTossConfig,
    parent_of: dict[str, str] | None = None,
) -> tuple[dict[str, Tensor], list[tuple[int, ...]]]:
    """Masks of every ``weights`` layer with one dictionary shared by all of them.

    ``parent_of`` maps a child layer to its parent (same weight shape): patterns
    are chosen on the other layers only, and a child takes its parent's mask.
    """
    parent_of = parent_of or {}
    bad = [c for c, p in parent_of.items() if weights[c].shape != weights[p].shape]
    if bad:
        raise EdgeslimError(f"R-TOSS children must have their parent's weight shape: {bad}")
    patterns = adjacent_patterns(cfg.entries, cfg.diagonal)
    full = pattern_matrix(patterns)
    kernels = {n: as_kernels(w.float()) for n, w in weights.items() if n not in parent_of}
    if not kernels:
        return {}, []
    first = torch.cat([best_patterns(k, full) for k, _ in kernels.values()])
    keep = reduce_dictionary(first, len(patterns), cfg.dictionary)
    reduced = full[keep]
    masks = {}
    for n, (k, rest) in kernels.items():
        rows = reduced[best_patterns(k, reduced)]
        masks[n] = from_kernels(rows, rest, weights[n]).to(weights[n].dtype)
    for child, parent in parent_of.items():
        masks[child] = masks[parent].clone().to(weights[child].dtype)
    return masks, [patterns[i] for i in keep]


@register_method(RTossConfig, "rtoss_sparsity")
class RTossSparsity(MaskMethod):
    def supports(self, module: nn.Module) -> bool:
        return base_type(module) is nn.Conv2d

    def apply_(self, model, config, layers, calib):
        picked = list(layers.select(model, self.supports))
        configs = {n: c for n, _, c in picked}
        weights = self.scores(model, configs, calib)
        groups, note = None, None
        kept = [n for n in configs if _patterned(weights[n]) and configs[n].parent_child]
        if kept:
            try:
                succ = successors(model, example_input(model, calib), kept)
            except EdgeslimError as e:
                if calib is not None:
                    raise
                # the guessed input does not fit this model: patterns per layer, said so
                note = f"no parent-child groups (no calib given and {e})"
                warnings.warn(note, stacklevel=2)
            else:
                same = {n: (tuple(weights[n].shape), configs[n]) for n in kept}
                groups = parent_child_groups(succ, same)
        masks, details = self._masks(weights, configs, groups.parent_of if groups else {})
        for name, mod, cfg in picked:
            if name in masks:
                add_mask_(mod, masks[name])
                layers.done(name, cfg)
        details["kind"] = config.kind
        details["sparsity"] = sparsity_of(model, list(layers.applied))
        details["parent_child"] = groups.to_json() if groups is not None else []
        if note:
            details["parent_child_note"] = note
        return model, details

    def masks(self, weights, configs):
        return self._masks(weights, configs, {})

    def _masks(self, weights, configs, parent_of: dict[str, str]):
        skipped = [n for n, w in weights.items() if not _patterned(w)]
        by_cfg: dict[RTossConfig, dict[str, Tensor]] = {}
        for n, w in weights.items():
            if n not in skipped:
                by_cfg.setdefault(configs[n], {})[n] = w
        out, dictionaries = {}, []
        for cfg, ws in by_cfg.items():
            kids = {c: p for c, p in parent_of.items() if c in ws}
            masks, keep = rtoss_masks(ws, cfg, kids)
            out.update(masks)
            dictionaries.append({"entries": cfg.entries, "patterns": [list(p) for p in keep]})
        return out, {"skipped": skipped, "dictionaries": dictionaries}


def _patterned(w: Tensor) -> bool:
    """R-TOSS patterns 3×3 kernels and (regrouped) 1×1 kernels; other sizes stay dense."""
    return tuple(w.shape[2:]) in ((3, 3), (1, 1))
