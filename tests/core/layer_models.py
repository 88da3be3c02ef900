"""One small model per layer type of the table (:mod:`edgeslim.core.layer_types`).

``MODELS[type name] = (factory name, input shape, dtype)``; loaded by path from
saved models, so this file only imports torch and edgeslim.
"""

import torch
from torch import nn


def _head(c: int, dims: int) -> list[nn.Module]:
    pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[dims]
    return [pool(1), nn.Flatten(), nn.Linear(c, 4)]


def conv(dims: int) -> nn.Sequential:
    c = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    return nn.Sequential(c(3, 8, 3, padding=1), nn.ReLU(), c(8, 8, 3, padding=1), *_head(8, dims))


def conv_transpose(dims: int) -> nn.Sequential:
    c = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    t = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[dims]
    return nn.Sequential(
        c(3, 8, 3, padding=1), nn.ReLU(), t(8, 8, 2, stride=2), nn.ReLU(), *_head(8, dims)
    )


def norm(dims: int, kind: str) -> nn.Sequential:
    c = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    n = {
        "batch": {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](8),
        "instance": {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[dims](
            8, affine=True
        ),
        "group": nn.GroupNorm(2, 8),
    }[kind]
    return nn.Sequential(c(3, 8, 3, padding=1), n, nn.ReLU(), c(8, 8, 1), *_head(8, dims))


def linear() -> nn.Sequential:
    return nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))


def layer_norm() -> nn.Sequential:
    return nn.Sequential(nn.Linear(16, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 4))


class Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.fc1 = nn.Linear(16, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(self.emb(ids).mean(1))))


class Attention(nn.Module):
    def __init__(self, head_prunable: bool = False) -> None:
        super().__init__()
        self.inp = nn.Linear(8, 16)
        if head_prunable:
            from edgeslim.graph.attention import HeadPrunableMHA

            self.mha = HeadPrunableMHA(16, 4, 4, batch_first=True)
        else:
            self.mha = nn.MultiheadAttention(16, 4, batch_first=True)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return self.fc(self.mha(h, h, h, need_weights=False)[0].mean(1))


def head_prunable() -> Attention:
    return Attention(head_prunable=True)


def _named(name: str, fn, *args):
    def factory() -> nn.Module:
        return fn(*args)

    factory.__name__ = name
    globals()[name] = factory
    return name


_F = "float32"
_1D, _2D, _3D = (1, 3, 16), (1, 3, 8, 8), (1, 3, 4, 6, 6)
MODELS = {
    "Linear": ("linear", (1, 16), _F),
    "LayerNorm": ("layer_norm", (1, 16), _F),
    "Embedding": ("Tokens", (1, 6), "int64"),
    "MultiheadAttention": ("Attention", (1, 5, 8), _F),
    "HeadPrunableMHA": ("head_prunable", (1, 5, 8), _F),
    "GroupNorm": (_named("group_norm", norm, 2, "group"), _2D, _F),
}
for _d, _shape in ((1, _1D), (2, _2D), (3, _3D)):
    MODELS[f"Conv{_d}d"] = (_named(f"conv{_d}d", conv, _d), _shape, _F)
    MODELS[f"ConvTranspose{_d}d"] = (_named(f"conv_t{_d}d", conv_transpose, _d), _shape, _F)
    MODELS[f"BatchNorm{_d}d"] = (_named(f"bn{_d}d", norm, _d, "batch"), _shape, _F)
    MODELS[f"InstanceNorm{_d}d"] = (_named(f"in{_d}d", norm, _d, "instance"), _shape, _F)
