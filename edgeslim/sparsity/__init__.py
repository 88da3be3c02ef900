"""Sparsity: weight masks as parametrizations, a sparsifier shaped like an optimizer, the
AGP schedule, and compressed storage.

Every kind is a frozen config applied with :func:`edgeslim.core.methods.apply_`
(importing this package registers them): :class:`MagnitudeConfig` (unstructured,
layer-wise or global), :class:`TaylorConfig` (unstructured by first-order Taylor
scores on calibration batches), :class:`NMConfig` (N:M along the reduction axis),
:class:`RTossConfig` (R-TOSS 3EP / 2EP kernel patterns), :class:`SharedPatternConfig`
(filter groups sharing one 3×3 pattern, permuted contiguous) and its deployment
:class:`PatternExecConfig` (:class:`PatternConv2d` where measured faster).

Example:
    >>> from torch import nn
    >>> from edgeslim.core.methods import apply_
    >>> from edgeslim.sparsity import NMConfig, squash_
    >>> m, rec = apply_(nn.Sequential(nn.Linear(8, 8)), NMConfig(1, 4))
    >>> float((squash_(m)[0].weight != 0).float().mean())
    0.25
"""

from edgeslim.sparsity.magnitude import MagnitudeConfig, magnitude_mask
from edgeslim.sparsity.mask import (
    WeightMask,
    add_mask_,
    mask_of,
    masked_layers,
    sparsity_of,
    squash_,
    squashed,
)
from edgeslim.sparsity.method import MaskMethod, SparsityConfig, squash_loaded
from edgeslim.sparsity.nm import NMConfig, nm_mask
from edgeslim.sparsity.pattern_conv import PatternConv2d
from edgeslim.sparsity.pattern_exec import PatternExecConfig
from edgeslim.sparsity.patterns import adjacent_patterns
from edgeslim.sparsity.rtoss import RTossConfig, rtoss_masks
from edgeslim.sparsity.schedule import AGPSchedule
from edgeslim.sparsity.shared import SharedPatternConfig
from edgeslim.sparsity.sparsifier import Sparsifier
from edgeslim.sparsity.taylor import TaylorConfig, taylor_scores

__all__ = [
    "AGPSchedule",
    "MagnitudeConfig",
    "MaskMethod",
    "NMConfig",
    "PatternConv2d",
    "PatternExecConfig",
    "RTossConfig",
    "SharedPatternConfig",
    "SparsityConfig",
    "Sparsifier",
    "TaylorConfig",
    "WeightMask",
    "add_mask_",
    "adjacent_patterns",
    "magnitude_mask",
    "mask_of",
    "masked_layers",
    "nm_mask",
    "rtoss_masks",
    "sparsity_of",
    "squash_loaded",
    "squash_",
    "squashed",
    "taylor_scores",
]
