"""Structured pruning: physical channel removal across coupled layers, criteria, budgets.

Example:
    >>> import torch
    >>> from edgeslim.models import build_zoo_model
    >>> from edgeslim.prune import PruneConfig, prune
    >>> res = prune(build_zoo_model("resnet20"), torch.randn(1, 3, 32, 32), PruneConfig(ratio=0.5))
    >>> res.model.conv1.out_channels
    8
"""

from edgeslim.prune.config import PruneConfig
from edgeslim.prune.criteria import CRITERIA, Criterion, register_criterion
from edgeslim.prune.structured import PruneResult, prune, prune_

__all__ = [
    "CRITERIA",
    "Criterion",
    "PruneConfig",
    "PruneResult",
    "prune",
    "prune_",
    "register_criterion",
]
