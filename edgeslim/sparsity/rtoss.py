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
The parent-child layer groups of the paper (a depth-first search over the
dependency graph) are not built here: every selected layer gets patterns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import register_method
from edgeslim.sparsity.mask import base_type
from edgeslim.sparsity.method import MaskMethod, SparsityConfig
from edgeslim.sparsity.patterns import (
    adjacent_patterns,
    best_patterns,
    pattern_matrix,
    reduce_dictionary,
)


@dataclass(frozen=True)
class RTossConfig(SparsityConfig):
    """Kernel-pattern sparsity: ``entries=3`` is 3EP, ``entries=2`` is 2EP.

    Args:
        entries: nonzeros kept per 3×3 kernel (2 or 3 in the paper).
        dictionary: how many of the most used patterns are kept (21 in the paper).
        diagonal: count corner-touching positions as adjacent.

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
    weights: dict[str, Tensor], cfg: RTossConfig
) -> tuple[dict[str, Tensor], list[tuple[int, ...]]]:
    """Masks of every ``weights`` layer with one dictionary shared by all of them."""
    patterns = adjacent_patterns(cfg.entries, cfg.diagonal)
    full = pattern_matrix(patterns)
    kernels = {n: as_kernels(w.float()) for n, w in weights.items()}
    if not kernels:
        return {}, []
    first = torch.cat([best_patterns(k, full) for k, _ in kernels.values()])
    keep = reduce_dictionary(first, len(patterns), cfg.dictionary)
    reduced = full[keep]
    masks = {}
    for n, (k, rest) in kernels.items():
        rows = reduced[best_patterns(k, reduced)]
        masks[n] = from_kernels(rows, rest, weights[n]).to(weights[n].dtype)
    return masks, [patterns[i] for i in keep]


@register_method(RTossConfig, "rtoss_sparsity")
class RTossSparsity(MaskMethod):
    def supports(self, module: nn.Module) -> bool:
        return base_type(module) is nn.Conv2d

    def masks(self, weights, configs):
        skipped = [n for n, w in weights.items() if tuple(w.shape[2:]) not in ((3, 3), (1, 1))]
        by_cfg: dict[RTossConfig, dict[str, Tensor]] = {}
        for n, w in weights.items():
            if n not in skipped:
                by_cfg.setdefault(configs[n], {})[n] = w
        out, dictionaries = {}, []
        for cfg, ws in by_cfg.items():
            masks, keep = rtoss_masks(ws, cfg)
            out.update(masks)
            dictionaries.append({"entries": cfg.entries, "patterns": [list(p) for p in keep]})
        return out, {"skipped": skipped, "dictionaries": dictionaries}
