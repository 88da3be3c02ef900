"""Architectures not in the zoo, written the way their papers' reference code is.

DenseNet (concat growth), ShuffleNetV2 (chunk + channel shuffle), Inception (branch
concat), SE (sigmoid gate mul), MobileNet-style depthwise with a channel multiplier,
grouped conv, GroupNorm/InstanceNorm, ConvNeXt-style LayerNorm + Linear MLP in
channels-last, a YOLO-style two-output detector (upsample + concat), a flatten into
a Linear, a spatial-attention broadcast mul, and an attention classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cbr(i: int, o: int, k: int = 3, s: int = 1, g: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o), nn.ReLU()
    )


class DenseNetLike(nn.Module):
    def __init__(self, growth: int = 8, layers: int = 3, nc: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        c = 16
        self.block = nn.ModuleList()
        for _ in range(layers):
            self.block.append(
                nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, growth, 3, padding=1))
            )
            c += growth
        self.trans = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, 16, 1))
        self.fc = nn.Linear(16, nc)

    def forward(self, x):
        x = self.stem(x)
        for layer in self.block:
            x = torch.cat([x, layer(x)], 1)
        x = self.trans(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, c: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        b = c // 2
        bin_ = c if stride > 1 else b
        self.branch2 = nn.Sequential(
            cbr(bin_, b, 1),
            nn.Conv2d(b, b, 3, stride, 1, groups=b, bias=False),
            nn.BatchNorm2d(b),
            cbr(b, b, 1),
        )
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False), nn.BatchNorm2d(c), cbr(c, b, 1)
            )

    def forward(self, x):
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            out = torch.cat((a, self.branch2(b)), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        return channel_shuffle(out, 2)


class ShuffleNetLike(nn.Module):
    def __init__(self, nc: int = 10) -> None:
        super().__init__()
        self.stem = cbr(3, 24)
        self.units = nn.Sequential(ShuffleUnit(24, 2), ShuffleUnit(24), ShuffleUnit(24))
        self.head = cbr(24, 64, 1)
        self.fc = nn.Linear(64, nc)

    def forward(self, x):
        x = self.head(self.units(self.stem(x)))
        return self.fc(x.mean((2, 3)))


class InceptionLike(nn.Module):
    def __init__(self, nc: int = 10) -> None:
        super().__init__()
        self.stem = cbr(3, 32)
        self.b1 = cbr(32, 16, 1)
        self.b2 = nn.Sequential(cbr(32, 12, 1), cbr(12, 24, 3))
        self.b3 = nn.Sequential(cbr(32, 8, 1), cbr(8, 12, 3), cbr(12, 12, 3))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), cbr(32, 8, 1))
        self.mix = cbr(60, 32, 1)
        self.fc = nn.Linear(32, nc)

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)
        return self.fc(F.adaptive_avg_pool2d(self.mix(x), 1).flatten(1))


class SEBlock(nn.Module):
    def __init__(self, c: int, r: int = 4) -> None:
        super().__init__()
        self.conv = cbr(c, c)
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.fc2 = nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        y = self.conv(x)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(y.mean((2, 3), keepdim=True)))))
        return x + y * s


class SENet(nn.Module):
    def __init__(self, nc: int = 10) -> None:
        super().__init__()
        self.stem = cbr(3, 32)
        self.blocks = nn.Sequential(SEBlock(32), SEBlock(32))
        self.spatial = nn.Conv2d(32, 1, 3, padding=1)
        self.fc = nn.Linear(32, nc)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = x * torch.sigmoid(self.spatial(x))  # spatial attention: broadcast over channels
        return self.fc(x.mean((2, 3)))


class DepthwiseGrouped(nn.Module):
    """Depthwise with channel multiplier 2, a grouped conv (pruned by whole groups), GN and IN."""

    def __init__(self, nc: int = 10) -> None:
        super().__init__()
        self.stem = cbr(3, 16)
        self.dw = nn.Conv2d(16, 32, 3, padding=1, groups=16)  # multiplier 2
        self.gn = nn.GroupNorm(4, 32)
        self.pw = nn.Conv2d(32, 32, 1)
        self.grouped = nn.Conv2d(32, 32, 3, padding=1, groups=4)
        self.inorm = nn.InstanceNorm2d(32, affine=True)
        self.pw2 = nn.Conv2d(32, 24, 1)
        self.fc = nn.Linear(24 * 4 * 4, nc)  # flatten into Linear

    def forward(self, x):
        x = F.relu(self.gn(self.dw(self.stem(x))))
        x = F.relu(self.grouped(F.relu(self.pw(x))))
        x = F.relu(self.pw2(F.relu(self.inorm(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 4).flatten(1))


class GroupedBottleneck(nn.Module):
    """ResNeXt / RegNetY-style: 1x1 -> grouped 3x3 (width 8 per group) -> SE -> 1x1, residual."""

    def __init__(self, c: int = 16, w: int = 32, gw: int = 8) -> None:
        super().__init__()
        self.a = cbr(c, w, k=1)
        self.b = cbr(w, w, g=w // gw)
        self.se = SEBlock(w)
        self.c = nn.Sequential(nn.Conv2d(w, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return F.relu(x + self.c(self.se(self.b(self.a(x)))))


class ResNeXtLike(nn.Module):
    def __init__(self, nc: int = 10) -> None:
        super().__init__()
        self.stem = cbr(3, 16)
        self.blocks = nn.Sequential(GroupedBottleneck(), GroupedBottleneck(gw=4))
        self.fc = nn.Linear(16, nc)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


class ConvNeXtLike(nn.Module):
    """dwconv -> channels-last LayerNorm -> Linear MLP -> residual: LN pins the width."""

    def __init__(self, c: int = 32, nc: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 4, 4)
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.fc1 = nn.Linear(c, 4 * c)
        self.fc2 = nn.Linear(4 * c, c)
        self.head = nn.Linear(c, nc)

    def forward(self, x):
        x = self.stem(x)
        y = self.norm(self.dw(x).permute(0, 2, 3, 1))
        y = self.fc2(F.gelu(self.fc1(y))).permute(0, 3, 1, 2)
        return self.head((x + y).mean((2, 3)))


class TinyDetector(nn.Module):
    """YOLO-style: two scales, upsample + concat neck, two raw head outputs."""

    def __init__(self, na: int = 3, nc: int = 4) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = cbr(3, 16, s=2), cbr(16, 32, s=2), cbr(32, 64, s=2)
        self.lat = cbr(64, 32, 1)
        self.fuse = cbr(64, 32)
        self.head_s = nn.Conv2d(32, na * (5 + nc), 1)
        self.head_l = nn.Conv2d(64, na * (5 + nc), 1)

    def forward(self, x):
        p3 = self.c2(self.c1(x))
        p4 = self.c3(p3)
        up = F.interpolate(self.lat(p4), scale_factor=2.0, mode="nearest")
        return self.head_s(self.fuse(torch.cat([up, p3], 1))), self.head_l(p4)


class AttnClassifier(nn.Module):
    def __init__(self, d: int = 32, heads: int = 4, nc: int = 5) -> None:
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ffn1, self.ffn2 = nn.Linear(d, 64), nn.Linear(64, d)
        self.fc = nn.Linear(d, nc)

    def forward(self, x):
        h = self.embed(x)
        a, _ = self.attn(h, h, h, need_weights=False)
        h = h + a
        h = h + self.ffn2(F.relu(self.ffn1(h)))
        return self.fc(h.mean(1))


class PixelShuffleUp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = cbr(3, 16)
        self.up = nn.Sequential(nn.Conv2d(16, 16, 1), nn.PixelShuffle(2))
        self.out = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.out(self.up(self.conv(x)))


CNNS = {
    "densenet": DenseNetLike,
    "shufflenet": ShuffleNetLike,
    "inception": InceptionLike,
    "senet": SENet,
    "depthwise_grouped": DepthwiseGrouped,
    "resnext": ResNeXtLike,
    "convnext": ConvNeXtLike,
    "detector": TinyDetector,
}


class EmbeddingBag(nn.Module):
    """Token embedding -> MLP -> mean: the embedding width is prunable (no LayerNorm)."""

    def __init__(self, vocab: int = 50, d: int = 16, nc: int = 4) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.proj = nn.Linear(d, 32)
        self.fc = nn.Linear(32, nc)

    def forward(self, ids):
        return self.fc(F.relu(self.proj(self.emb(ids))).mean(1))
