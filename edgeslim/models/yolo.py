"""``yolov5n`` / ``yolov5s``: a YOLOv5-style detector written from its published design.

The v6.0 layout of YOLOv5 (Jocher et al., ultralytics/yolov5, 2020-2022; the CSP idea
from Wang et al., "CSPNet", CVPRW 2020, arXiv:1911.11929; the PAN neck from Liu et al.,
"Path Aggregation Network for Instance Segmentation", CVPR 2018, arXiv:1803.01534),
without any of its code:

- backbone: Conv(6x6, stride 2) stem, then stride-2 Convs and C3 blocks down to 1/32,
  and SPPF (three chained 5x5 max pools, concatenated);
- neck: a top-down path (1x1 Conv, nearest upsample, concat, C3) and a bottom-up path
  (stride-2 Conv, concat, C3), giving features at strides 8, 16 and 32;
- head: one 1x1 conv per stride with ``anchors * (5 + classes)`` output channels.

``Conv`` is conv + BN + SiLU. Channel widths scale by ``width`` (rounded up to a multiple
of 8) and C3 repeats by ``depth``: ``yolov5n`` is (0.33, 0.25), ``yolov5s`` (0.33, 0.50).

The model returns the three raw head maps ``(p3, p4, p5)``, each
``(N, anchors * (5 + classes), H / stride, W / stride)``; the ``detection`` task
(:mod:`edgeslim.tasks.detection`) owns the anchors, the decoding and the loss. The
head's biases start where YOLOv5 starts them: objectness at about 8 objects per
256x256 image, classes at 0.6 / classes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from edgeslim.models.zoo import register_model

ANCHORS_PER_CELL = 3
STRIDES = (8, 16, 32)
DRIVING_CLASSES = 6  # edgeslim.data.driving's classes (models must not import data)
INPUT_SIZE = 256  # default input side, px: small enough for CPU training


class Conv(nn.Module):
    """Conv2d (no bias) + BatchNorm + SiLU, padded to keep ``H / s``."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, bias=False)
        self.bn = nn.BatchNorm2d(
            c2, eps=1e-3
        )  # YOLOv5 uses momentum 0.03: too slow for short CPU runs
        self.act = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """1x1 then 3x3 Conv, with a residual add when ``shortcut``."""

    def __init__(self, c: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = Conv(c, c, 1)
        self.cv2 = Conv(c, c, 3)
        self.add = shortcut

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP block: ``n`` bottlenecks on one half, a 1x1 bypass on the other, concat, 1x1."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        h = c2 // 2
        self.cv1 = Conv(c1, h)
        self.cv2 = Conv(c1, h)
        self.cv3 = Conv(2 * h, c2)
        self.m = nn.Sequential(*(Bottleneck(h, shortcut) for _ in range(n)))

    def forward(self, x: Tensor) -> Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained ``k x k`` max pools, concatenated."""

    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        h = c1 // 2
        self.cv1 = Conv(c1, h)
        self.cv2 = Conv(4 * h, c2)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


def _width(c: int, width: float) -> int:
    return int(math.ceil(c * width / 8) * 8)


def _depth(n: int, depth: float) -> int:
    return max(round(n * depth), 1)


class YOLOv5(nn.Module):
    """Backbone, SPPF, PAN neck and three heads; returns the raw head maps ``(p3, p4, p5)``.

    Example:
        >>> m = YOLOv5(num_classes=6).eval()
        >>> [tuple(p.shape) for p in m(torch.zeros(1, 3, 64, 64))]
        [(1, 33, 8, 8), (1, 33, 4, 4), (1, 33, 2, 2)]
    """

    def __init__(
        self, num_classes: int = DRIVING_CLASSES, depth: float = 0.33, width: float = 0.25
    ):
        super().__init__()
        c64, c128, c256, c512, c1024 = (_width(c, width) for c in (64, 128, 256, 512, 1024))
        d3, d6, d9 = (_depth(n, depth) for n in (3, 6, 9))
        self.num_classes = num_classes
        self.stem = Conv(3, c64, 6, 2, 2)  # /2
        self.down1 = Conv(c64, c128, 3, 2)  # /4
        self.c3_1 = C3(c128, c128, d3)
        self.down2 = Conv(c128, c256, 3, 2)  # /8 -> P3
        self.c3_2 = C3(c256, c256, d6)
        self.down3 = Conv(c256, c512, 3, 2)  # /16 -> P4
        self.c3_3 = C3(c512, c512, d9)
        self.down4 = Conv(c512, c1024, 3, 2)  # /32 -> P5
        self.c3_4 = C3(c1024, c1024, d3)
        self.sppf = SPPF(c1024, c1024)
        # top-down
        self.lat5 = Conv(c1024, c512)
        self.up5 = nn.Upsample(scale_factor=2, mode="nearest")
        self.td4 = C3(2 * c512, c512, d3, shortcut=False)
        self.lat4 = Conv(c512, c256)
        self.up4 = nn.Upsample(scale_factor=2, mode="nearest")
        self.td3 = C3(2 * c256, c256, d3, shortcut=False)  # -> P3 out
        # bottom-up
        self.bu3 = Conv(c256, c256, 3, 2)
        self.pan4 = C3(2 * c256, c512, d3, shortcut=False)  # -> P4 out
        self.bu4 = Conv(c512, c512, 3, 2)
        self.pan5 = C3(2 * c512, c1024, d3, shortcut=False)  # -> P5 out
        out = ANCHORS_PER_CELL * (5 + num_classes)
        self.head = nn.ModuleList(nn.Conv2d(c, out, 1) for c in (c256, c512, c1024))
        self._init_biases()

    def _init_biases(self) -> None:
        """YOLOv5's prior: objectness ~ 8 objects per image, classes ~ 0.6 / C."""
        for conv, s in zip(self.head, STRIDES, strict=True):
            b = conv.bias.detach().view(ANCHORS_PER_CELL, -1)
            b[:, 4] += math.log(8 / (INPUT_SIZE / s) ** 2)
            b[:, 5:] += math.log(0.6 / max(self.num_classes - 0.99, 0.01))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        p3 = self.c3_2(self.down2(self.c3_1(self.down1(self.stem(x)))))
        p4 = self.c3_3(self.down3(p3))
        p5 = self.sppf(self.c3_4(self.down4(p4)))
        t5 = self.lat5(p5)
        t4 = self.lat4(self.td4(torch.cat((self.up5(t5), p4), 1)))
        n3 = self.td3(torch.cat((self.up4(t4), p3), 1))
        n4 = self.pan4(torch.cat((self.bu3(n3), t4), 1))
        n5 = self.pan5(torch.cat((self.bu4(n4), t5), 1))
        return self.head[0](n3), self.head[1](n4), self.head[2](n5)


_SHAPE = (1, 3, INPUT_SIZE, INPUT_SIZE)


@register_model(
    "yolov5n",
    input_shape=_SHAPE,
    num_classes=DRIVING_CLASSES,
    description="YOLOv5-nano-style detector (depth 0.33, width 0.25), 3 scales, 256x256",
    task="detection",
)
def yolov5n(num_classes: int = DRIVING_CLASSES) -> YOLOv5:
    return YOLOv5(num_classes, depth=0.33, width=0.25)


@register_model(
    "yolov5s",
    input_shape=_SHAPE,
    num_classes=DRIVING_CLASSES,
    description="YOLOv5-small-style detector (depth 0.33, width 0.50), 3 scales, 256x256",
    task="detection",
)
def yolov5s(num_classes: int = DRIVING_CLASSES) -> YOLOv5:
    return YOLOv5(num_classes, depth=0.33, width=0.50)
