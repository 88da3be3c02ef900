"""Unstructured magnitude sparsity, layer-wise or global (Han et al. 2015, "Learning both
Weights and Connections for Efficient Neural Networks").

The ``round(s * n)`` weights of smallest ``|w|`` are zeroed: in each layer
(``scope="layer"``), or over all selected layers together (``scope="global"``,
one threshold, so layers end up with different sparsities). Ties break by
position, so the count is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import register_method
from edgeslim.sparsity.method import MaskMethod, SparsityConfig


@dataclass(frozen=True)
class MagnitudeConfig(SparsityConfig):
    """Zero the fraction ``sparsity`` of smallest-magnitude weights.

    Args:
        sparsity: target fraction of zero weights, in [0, 1).
        scope: ``"layer"`` (each layer at ``sparsity``) or ``"global"`` (one
            threshold over every selected layer; per-layer overrides are then
            only used to include or exclude layers).

    Example:
        >>> from torch import nn
        >>> from edgeslim.core.methods import apply_
        >>> m, rec = apply_(nn.Sequential(nn.Linear(10, 10)), MagnitudeConfig(0.5))
        >>> int((m[0].weight == 0).sum())
        50
    """

    kind: ClassVar[str] = "magnitude"
    sparsity: float = 0.5
    scope: str = "layer"

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise EdgeslimError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.scope not in ("layer", "global"):
            raise EdgeslimError(f"magnitude scope must be 'layer' or 'global', got {self.scope!r}")


def magnitude_mask(scores: Tensor, sparsity: float) -> Tensor:
    """A 0/1 mask zeroing the ``round(sparsity * n)`` lowest ``scores`` (first ones on ties)."""
    flat = scores.flatten()
    k = round(sparsity * flat.numel())
    mask = torch.ones_like(flat)
    if k:
        mask[torch.argsort(flat, stable=True)[:k]] = 0
    return mask.view_as(scores)


def magnitude_masks(
    scores: dict[str, Tensor], configs: dict[str, MagnitudeConfig]
) -> tuple[dict[str, Tensor], dict]:
    """Masks keeping the largest ``|scores|``: per layer, or over all layers (``scope``)."""
    if not scores:
        return {}, {}
    first = next(iter(configs.values()))
    if first.scope == "layer":
        return {n: magnitude_mask(w.abs(), configs[n].sparsity) for n, w in scores.items()}, {}
    mask = magnitude_mask(torch.cat([w.abs().flatten() for w in scores.values()]), first.sparsity)
    out, at = {}, 0
    for n, w in scores.items():
        out[n] = mask[at : at + w.numel()].view_as(w)
        at += w.numel()
    return out, {"scope": "global"}


@register_method(MagnitudeConfig, "magnitude_sparsity")
class MagnitudeSparsity(MaskMethod):
    def masks(self, weights, configs):
        return magnitude_masks(weights, configs)
