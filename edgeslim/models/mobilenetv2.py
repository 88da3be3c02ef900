"""MobileNetV2 (width 1.0), ImageNet layout and a CIFAR adaptation.

Sandler, Howard, Zhu, Zhmoginov, Chen, "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", CVPR 2018 (arXiv:1801.04381), Table 2. The ImageNet variant matches
torchvision's ``mobilenet_v2`` (3,504,872 parameters, about 0.30 GMACs at 224) down
to its ``state_dict`` keys.

The CIFAR variant keeps every block but makes the stem and the first two strided
stages (24 and 32 channels) stride 1, so a 32x32 input reaches the head at 4x4
instead of 1x1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgeslim.models.resnet import init_conv_bn_
from edgeslim.models.zoo import register_model

# Table 2 of the paper: (expansion t, output channels c, repeats n, first stride s).
IMAGENET_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
CIFAR_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 1),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class ConvBNReLU6(nn.Sequential):
    """Conv (no bias) -> BN -> ReLU6; ``groups=in_ch`` makes it depthwise."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU6(),
        )


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6), 3x3 depthwise (ReLU6), 1x1 linear project; residual if shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = in_ch * expand_ratio
        self.use_res_connect = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(in_ch, hidden, kernel=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out


class MobileNetV2(nn.Module):
    """MobileNetV2 at width 1.0.

    Args:
        setting: rows of (t, c, n, s) as in Table 2 of the paper.
        num_classes: size of the classifier head.
        stem_stride: stride of the first 3x3 conv (2 for ImageNet, 1 for CIFAR).
        dropout: dropout probability before the classifier.
    """

    def __init__(
        self,
        setting: tuple[tuple[int, int, int, int], ...] = IMAGENET_SETTING,
        num_classes: int = 1000,
        stem_stride: int = 2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        in_ch, last_ch = 32, 1280
        layers: list[nn.Module] = [ConvBNReLU6(3, in_ch, stride=stem_stride)]
        for t, c, n, s in setting:
            for i in range(n):
                layers.append(InvertedResidual(in_ch, c, s if i == 0 else 1, t))
                in_ch = c
        layers.append(ConvBNReLU6(in_ch, last_ch, kernel=1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_ch, num_classes))
        init_conv_bn_(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model(
    "mobilenet_v2",
    input_shape=(1, 3, 224, 224),
    num_classes=1000,
    description="MobileNetV2 1.0, ImageNet layout (3.5M params, 0.30 GMACs at 224)",
)
def mobilenet_v2(num_classes: int = 1000) -> MobileNetV2:
    """MobileNetV2 1.0 for 224x224 ImageNet inputs."""
    return MobileNetV2(IMAGENET_SETTING, num_classes, stem_stride=2)


@register_model(
    "mobilenet_v2_cifar",
    input_shape=(1, 3, 32, 32),
    num_classes=10,
    description="MobileNetV2 1.0, CIFAR layout (stem and stages 24/32 at stride 1)",
)
def mobilenet_v2_cifar(num_classes: int = 10) -> MobileNetV2:
    """MobileNetV2 1.0 for 32x32 inputs."""
    return MobileNetV2(CIFAR_SETTING, num_classes, stem_stride=1)
