"""``retinanet_r18`` / ``retinanet_r18_lite``: RetinaNet with a ResNet-18 backbone.

Lin, Goyal, Girshick, He, Dollar, "Focal Loss for Dense Object Detection", ICCV 2017
(arXiv:1708.02002), written here without torchvision:

- backbone: ResNet-18 (:mod:`edgeslim.models.resnet`'s blocks), features C3, C4, C5
  at strides 8, 16, 32;
- FPN (Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017,
  arXiv:1612.03144): 1x1 laterals, nearest upsampling and adds top-down, a 3x3
  output conv per level, and P6 as a stride-2 3x3 conv on P5 (the paper's P7 would
  be a 2x2 map at 256 px: left out to keep the model small);
- two subnets shared by every level: ``depth`` 3x3 conv + ReLU layers of ``head``
  channels, then a 3x3 conv to ``A * classes`` logits (class subnet) or ``A * 4``
  box deltas (box subnet), ``A = 9`` anchors per cell (3 scales x 3 ratios). The
  class bias starts at ``-log((1 - pi) / pi)``, ``pi = 0.01`` (the paper's prior,
  so that the focal loss of the ~10^4 background anchors does not swamp the first
  steps); the other head weights are N(0, 0.01) with zero bias, as in the paper.

The model returns the raw head maps, class maps first::

    (cls_p3, cls_p4, cls_p5, cls_p6, box_p3, box_p4, box_p5, box_p6)
    cls: (N, 9 * classes, H / s, W / s)    box: (N, 9 * 4, H / s, W / s)

and the ``detection`` task (:mod:`edgeslim.tasks.detection.retina`) owns the anchors,
the decoding and the focal loss, as it does YOLO's. ``retinanet_r18`` keeps
ResNet-18's widths (64-512), a 128-channel FPN and 4 x 128 subnets;
``retinanet_r18_lite`` halves the backbone (32-256), and uses a 64-channel FPN and
2 x 64 subnets, so that it trains on a CPU in minutes.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from edgeslim.models.resnet import BasicBlock, init_conv_bn_, make_stage
from edgeslim.models.zoo import register_model

ANCHORS_PER_CELL = 9  # 3 scales x 3 aspect ratios (the task's anchor table)
DRIVING_CLASSES = 6  # edgeslim.data.driving's classes (models must not import data)
INPUT_SIZE = 256  # default input side, px
PRIOR = 0.01  # initial foreground probability of every anchor and class


class Subnet(nn.Module):
    """``depth`` (3x3 conv + ReLU) layers and a 3x3 output conv; shared by every level."""

    def __init__(self, c_in: int, width: int, depth: int, c_out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Conv2d(c_in if i == 0 else width, width, 3, padding=1), nn.ReLU()]
        self.tower = nn.Sequential(*layers)
        self.out = nn.Conv2d(width if depth else c_in, c_out, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.tower(x))


class FPN(nn.Module):
    """Laterals, top-down adds and 3x3 outputs on C3-C5, plus P6 = conv3x3/2(P5)."""

    def __init__(self, in_channels: tuple[int, int, int], width: int) -> None:
        super().__init__()
        self.lat3, self.lat4, self.lat5 = (nn.Conv2d(c, width, 1) for c in in_channels)
        self.out3, self.out4, self.out5 = (nn.Conv2d(width, width, 3, padding=1) for _ in "345")
        self.p6 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.up5 = nn.Upsample(scale_factor=2, mode="nearest")
        self.up4 = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, c3: Tensor, c4: Tensor, c5: Tensor) -> tuple[Tensor, ...]:
        t5 = self.lat5(c5)
        t4 = self.lat4(c4) + self.up5(t5)
        t3 = self.lat3(c3) + self.up4(t4)
        p5 = self.out5(t5)
        return self.out3(t3), self.out4(t4), p5, self.p6(p5)


class RetinaNet(nn.Module):
    """ResNet-18 + FPN (P3-P6) + shared class and box subnets; returns raw head maps.

    Args:
        num_classes: object classes (no background class: the focal loss is sigmoid).
        backbone_width: channels of ResNet-18's first stage (64 in the paper).
        fpn_width: channels of every pyramid level.
        head_width, head_depth: channels and conv layers of each subnet's tower.

    Example:
        >>> import torch
        >>> m = RetinaNet(6, 16, 32, 32, 1).eval()
        >>> [tuple(p.shape) for p in m(torch.zeros(1, 3, 64, 64))][::4]
        [(1, 54, 8, 8), (1, 36, 8, 8)]
    """

    head_kind = "retinanet"  # what the detection task decodes (it reads the output layout)

    def __init__(
        self,
        num_classes: int = DRIVING_CLASSES,
        backbone_width: int = 64,
        fpn_width: int = 128,
        head_width: int = 128,
        head_depth: int = 4,
    ) -> None:
        super().__init__()
        w = backbone_width
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = make_stage(BasicBlock, w, w, 2, 1)  # /4
        self.layer2 = make_stage(BasicBlock, w, 2 * w, 2, 2)  # /8 -> C3
        self.layer3 = make_stage(BasicBlock, 2 * w, 4 * w, 2, 2)  # /16 -> C4
        self.layer4 = make_stage(BasicBlock, 4 * w, 8 * w, 2, 2)  # /32 -> C5
        init_conv_bn_(self)
        self.fpn = FPN((2 * w, 4 * w, 8 * w), fpn_width)
        a = ANCHORS_PER_CELL
        self.cls_head = Subnet(fpn_width, head_width, head_depth, a * num_classes)
        self.box_head = Subnet(fpn_width, head_width, head_depth, a * 4)
        nn.init.constant_(self.cls_head.out.bias, -math.log((1 - PRIOR) / PRIOR))

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c3 = self.layer2(self.layer1(x))
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        levels = self.fpn(c3, c4, c5)
        return tuple(self.cls_head(p) for p in levels) + tuple(self.box_head(p) for p in levels)


_SHAPE = (1, 3, INPUT_SIZE, INPUT_SIZE)


@register_model(
    "retinanet_r18",
    input_shape=_SHAPE,
    num_classes=DRIVING_CLASSES,
    description="RetinaNet, ResNet-18 backbone, FPN P3-P6 (128 ch), 4x128 subnets, 256x256",
    task="detection",
)
def retinanet_r18(num_classes: int = DRIVING_CLASSES) -> RetinaNet:
    return RetinaNet(num_classes, backbone_width=64, fpn_width=128, head_width=128, head_depth=4)


@register_model(
    "retinanet_r18_lite",
    input_shape=_SHAPE,
    num_classes=DRIVING_CLASSES,
    description="RetinaNet, half-width ResNet-18 (32-256 ch), FPN 64 ch, 2x64 subnets, 256x256",
    task="detection",
)
def retinanet_r18_lite(num_classes: int = DRIVING_CLASSES) -> RetinaNet:
    return RetinaNet(num_classes, backbone_width=32, fpn_width=64, head_width=64, head_depth=2)
