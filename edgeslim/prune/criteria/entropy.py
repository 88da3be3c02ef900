"""Entropy: Luo and Wu, "An Entropy-based Pruning Method for CNN Compression", 2017
(arXiv:1706.05791).

The entropy of each channel's global-average-pooled activation over the samples
(histogrammed, :func:`edgeslim.prune.importance.channel_entropy`): a channel whose
output barely changes from image to image carries little information and is pruned
first, whatever its magnitude.
"""

from __future__ import annotations

import torch

from edgeslim.prune.criteria import Criterion, Rows, register_criterion


def entropy(rows: Rows) -> torch.Tensor:
    """The channel's activation entropy (higher = more informative = keep)."""
    return rows["entropy"].mean(1)


register_criterion(
    "entropy",
    Criterion(
        entropy,
        needs="activations",
        view="activation",
        summary="entropy of the pooled activation (Luo & Wu 2017); needs data",
    ),
)
