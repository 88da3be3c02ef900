"""ResNet-18 and ResNet-50 for ImageNet.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385). The bottleneck puts the stride on the 3x3 conv ("ResNet v1.5"),
as torchvision does, so parameter counts (11,689,512 and 25,557,032) and
``state_dict`` keys match torchvision's ``resnet18`` / ``resnet50``.

Every ReLU call has its own module so that torch.export-based passes never see a
shared activation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgeslim.models.zoo import register_model


def _projection(in_ch: int, out_ch: int, stride: int) -> nn.Sequential | None:
    """1x1 conv + BN shortcut when the shape changes, else ``None`` (identity)."""
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
    )


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual add; the shortcut is a 1x1 projection when needed."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = _projection(in_ch, out_ch, stride)
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, with a residual add."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.downsample = _projection(in_ch, out_ch, stride)
        self.relu3 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + identity)


def make_stage(
    block: type[BasicBlock | Bottleneck], in_ch: int, width: int, blocks: int, stride: int
) -> nn.Sequential:
    """``blocks`` residual blocks; only the first one strides or changes channels."""
    layers = []
    for i in range(blocks):
        layers.append(block(in_ch, width, stride if i == 0 else 1))
        in_ch = width * block.expansion
    return nn.Sequential(*layers)


def init_conv_bn_(model: nn.Module) -> None:
    """Kaiming-normal (fan_out) convs and BN weight 1 / bias 0, as torchvision does."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNet(nn.Module):
    """ImageNet ResNet: 7x7/2 stem, 3x3/2 max pool, four stages, global pool, fc.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: number of blocks in each of the four stages.
        num_classes: size of the classifier head.
        small_input: a 3x3/2 stem and no max pool (4x less downsampling), for 32x32
            inputs; the stages are unchanged.
        width: channels of the stem and the first stage (64 in the paper); the later
            stages double it, as in the paper.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        small_input: bool = False,
        width: int = 64,
    ) -> None:
        super().__init__()
        if small_input:
            self.conv1 = nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = width
        widths = (width, 2 * width, 4 * width, 8 * width)
        for i, (w, n) in enumerate(zip(widths, layers, strict=True)):
            stage = make_stage(block, in_ch, w, n, stride=1 if i == 0 else 2)
            self.add_module(f"layer{i + 1}", stage)
            in_ch = w * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        init_conv_bn_(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model(
    "resnet18",
    input_shape=(1, 3, 224, 224),
    num_classes=1000,
    description="ResNet-18, ImageNet layout (11.7M params, 1.82 GMACs at 224)",
)
def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18: basic blocks (2, 2, 2, 2)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes)


@register_model(
    "resnet18_small",
    input_shape=(1, 3, 32, 32),
    num_classes=10,
    description="ResNet-18 for 32x32 inputs: 3x3/2 stem, no max pool (11.2M params, 0.14 GMACs)",
)
def resnet18_small(num_classes: int = 10) -> ResNet:
    """ResNet-18 stages on 16x16 feature maps: wide layers that INT8 kernels run well."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, small_input=True)


@register_model(
    "resnet18_small_half",
    input_shape=(1, 3, 32, 32),
    num_classes=10,
    description="resnet18_small at half width (32-256 channels; 2.8M params, 35 MMACs)",
)
def resnet18_small_half(num_classes: int = 10) -> ResNet:
    """The default model of ``edgeslim compress``: trains in minutes, still wide for INT8."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, small_input=True, width=32)


@register_model(
    "resnet50",
    input_shape=(1, 3, 224, 224),
    num_classes=1000,
    description="ResNet-50 v1.5, ImageNet layout (25.6M params, 4.1 GMACs at 224)",
)
def resnet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50: bottleneck blocks (3, 4, 6, 3)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes)
