"""The optimiser a :class:`~edgeslim.train.config.TrainConfig` asks for.

Weight decay applies to weight matrices and kernels only: decaying batch-norm scales
and biases shrinks them towards zero and only costs accuracy (Goyal et al., 2017, sec. 5.1).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from edgeslim.train.config import TrainConfig


def build_optimizer(
    params: Iterable[nn.Parameter], config: TrainConfig, lr: float | None = None
) -> torch.optim.Optimizer:
    """SGD (Nesterov when ``momentum > 0``) or AdamW over ``params``, at ``lr`` (or ``config.lr``).

    Example:
        >>> opt = build_optimizer(nn.Linear(2, 2).parameters(), TrainConfig(), lr=0.1)
        >>> [g["weight_decay"] for g in opt.param_groups]
        [0.0005, 0.0]
    """
    params = [p for p in params if p.requires_grad]
    lr = float(config.lr if lr is None else lr)
    groups = [
        {"params": [p for p in params if p.dim() > 1], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
    ]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=config.momentum, nesterov=config.momentum > 0)
