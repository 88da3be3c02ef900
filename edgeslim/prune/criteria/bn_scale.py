"""BN-scale (network slimming): Liu, Li, Shen, Huang, Yan, Zhang, "Learning Efficient
Convolutional Networks through Network Slimming", ICCV 2017 (arXiv:1708.06519).

A channel's BatchNorm scale ``|gamma|`` is its importance; training with an L1
penalty on the scales (:func:`edgeslim.prune.slimming.bn_l1_loss`) drives
unimportant ones to zero first. Groups without a norm layer fall back to L1.
"""

from __future__ import annotations

import torch

from edgeslim.prune.criteria import Criterion, Rows, register_criterion


def bn_scale(rows: Rows) -> torch.Tensor:
    """``|gamma_i|`` per channel."""
    return rows["scale"].abs().sum(1)


register_criterion(
    "bn_scale",
    Criterion(bn_scale, view="scale", summary="|BN scale| (network slimming, Liu et al. 2017)"),
)
