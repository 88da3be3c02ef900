"""VGG-16 with batch norm, with an ImageNet head and a small CIFAR head.

Simonyan, Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (arXiv:1409.1556), configuration D; batch norm after every
conv as in Ioffe, Szegedy, "Batch Normalization", ICML 2015 (arXiv:1502.03167).

The ImageNet variant matches torchvision's ``vgg16_bn`` (138,365,992 parameters)
down to its ``state_dict`` keys. The CIFAR variant replaces the 7x7x512 -> 4096 head
with a global pool and a 512-512-classes MLP, the usual CIFAR adaptation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgeslim.models.resnet import init_conv_bn_
from edgeslim.models.zoo import register_model

# Configuration D: output channels of each 3x3 conv; "M" is a 2x2 max pool.
VGG16_CFG: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)


def make_features(cfg: tuple[int | str, ...]) -> nn.Sequential:
    """Conv3x3-BN-ReLU for each int in ``cfg`` and MaxPool2d(2) for each "M"."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, stride=2))
        else:
            out_ch = int(v)
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU()]
            in_ch = out_ch
    return nn.Sequential(*layers)


def _init_vgg_(model: nn.Module) -> None:
    """torchvision's VGG init: Kaiming convs, BN 1/0, Linear N(0, 0.01) with zero bias."""
    init_conv_bn_(model)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


class VGG(nn.Module):
    """VGG body plus a pooled classifier head.

    Args:
        features: the convolutional body (see :func:`make_features`).
        pool: pooling between body and head (7x7 adaptive for ImageNet, 1x1 for CIFAR).
        classifier: the head, taking the flattened pooled features.
    """

    def __init__(self, features: nn.Sequential, pool: nn.Module, classifier: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.avgpool = pool
        self.classifier = classifier
        _init_vgg_(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model(
    "vgg16_bn",
    input_shape=(1, 3, 224, 224),
    num_classes=1000,
    description="VGG-16-BN, ImageNet head 4096-4096 (138.4M params)",
)
def vgg16_bn(num_classes: int = 1000) -> VGG:
    """VGG-16-BN with the ImageNet head (adaptive 7x7 pool, so any input size works)."""
    classifier = nn.Sequential(
        nn.Linear(512 * 7 * 7, 4096),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(4096, 4096),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(4096, num_classes),
    )
    return VGG(make_features(VGG16_CFG), nn.AdaptiveAvgPool2d((7, 7)), classifier)


@register_model(
    "vgg16_bn_cifar",
    input_shape=(1, 3, 32, 32),
    num_classes=10,
    description="VGG-16-BN, CIFAR head: global pool then 512-512-classes",
)
def vgg16_bn_cifar(num_classes: int = 10) -> VGG:
    """VGG-16-BN with a global-pool, 512-512-classes head for 32x32 inputs."""
    classifier = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, num_classes))
    return VGG(make_features(VGG16_CFG), nn.AdaptiveAvgPool2d(1), classifier)
