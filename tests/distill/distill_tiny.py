"""Tiny models and data shared by the distillation tests (a uniquely named module: a bare
``from conftest import`` finds whichever test folder's conftest came first on sys.path)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset


class TinyNet(nn.Module):
    """Two named stages and a head, like the zoo ResNets in miniature."""

    def __init__(self, width: int = 8, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.layer1 = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer2(self.layer1(x)).mean((2, 3)))


def tiny_data(n: int = 96, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=g)
    score = x[:, 0].mean((1, 2)) - x[:, 1].mean((1, 2))
    y = (score > 0.1).long() + (score > -0.1).long()  # 3 classes
    return TensorDataset(x, y)
