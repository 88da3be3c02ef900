"""CIFAR ResNets (ResNet-20, ResNet-56 and a half-width ResNet-20).

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385), Section 4.2: a 3x3 stem, then three stages of ``n`` basic
blocks with 16/32/64 channels at 32/16/8 pixels, global pool and fc; depth 6n+2.

The downsampling shortcut is the paper's option B (1x1 conv + BN projection), not
option A (strided identity padded with zeros): a zero-padded shortcut ties
channels to fixed positions, which channel pruning cannot follow.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgeslim.models.resnet import BasicBlock, init_conv_bn_, make_stage
from edgeslim.models.zoo import register_model


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs.

    Args:
        blocks_per_stage: ``n``, the number of basic blocks in each of the three stages.
        widths: channels of the three stages (the stem uses the first).
        num_classes: size of the classifier head.
    """

    def __init__(
        self,
        blocks_per_stage: int,
        widths: tuple[int, int, int] = (16, 32, 64),
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        in_ch = widths[0]
        for i, width in enumerate(widths):
            stage = make_stage(BasicBlock, in_ch, width, blocks_per_stage, 1 if i == 0 else 2)
            self.add_module(f"layer{i + 1}", stage)
            in_ch = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        init_conv_bn_(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model(
    "resnet20",
    input_shape=(1, 3, 32, 32),
    num_classes=10,
    description="CIFAR ResNet-20 (n=3, widths 16/32/64, 1x1 projection shortcuts)",
)
def resnet20(num_classes: int = 10) -> CifarResNet:
    """ResNet-20 for CIFAR."""
    return CifarResNet(3, (16, 32, 64), num_classes)


@register_model(
    "resnet56",
    input_shape=(1, 3, 32, 32),
    num_classes=10,
    description="CIFAR ResNet-56 (n=9, widths 16/32/64, 1x1 projection shortcuts)",
)
def resnet56(num_classes: int = 10) -> CifarResNet:
    """ResNet-56 for CIFAR."""
    return CifarResNet(9, (16, 32, 64), num_classes)


@register_model(
    "resnet20_half",
    input_shape=(1, 3, 32, 32),
    num_classes=10,
    description="CIFAR ResNet-20 at half width (8/16/32); a distillation student",
)
def resnet20_half(num_classes: int = 10) -> CifarResNet:
    """ResNet-20 with every width halved."""
    return CifarResNet(3, (8, 16, 32), num_classes)
