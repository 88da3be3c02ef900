"""The network-slimming sparsity penalty: L1 on BatchNorm scales during training.

Liu, Li, Shen, Huang, Yan, Zhang, "Learning Efficient Convolutional Networks through
Network Slimming", ICCV 2017 (arXiv:1708.06519), eq. 1: ``L = loss + lambda * sum |gamma|``
(lambda 1e-5 .. 1e-4). Train with it, then prune with the ``bn_scale`` criterion.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeslim.train.trainer import LossFn, cross_entropy

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm)


def bn_l1(model: nn.Module) -> torch.Tensor:
    """``sum |gamma|`` over every affine BatchNorm/GroupNorm scale of ``model``."""
    terms = [
        m.weight.abs().sum()
        for m in model.modules()
        if isinstance(m, _NORMS) and getattr(m, "weight", None) is not None
    ]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def with_bn_l1(strength: float = 1e-4, base: LossFn | None = None) -> LossFn:
    """Wrap a trainer loss (default cross-entropy) with the slimming penalty.

    Example:
        >>> # Trainer(model, TrainConfig(epochs=5), loss_fn=with_bn_l1(1e-4)).fit(train)
    """
    base = base or cross_entropy()

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        loss, logits = base(model, x, y)
        return loss + strength * bn_l1(model), logits

    return loss_fn
