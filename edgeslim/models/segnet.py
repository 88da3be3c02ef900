"""``seg_tiny``: a small encoder-decoder for per-pixel classification (the segmentation toy).

A two-level U-Net (Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for
Biomedical Image Segmentation", MICCAI 2015, arXiv:1505.04597) cut down to what a
32x32 toy needs: conv-BN-ReLU blocks, one 2x2 max-pool, a nearest-neighbour
upsample, a skip connection by channel concatenation and a 1x1 classifier that
keeps the input's resolution: ``(N, 3, H, W) -> (N, classes, H, W)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgeslim.models.resnet import init_conv_bn_
from edgeslim.models.zoo import register_model


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class TinyUNet(nn.Module):
    """Encoder (full and half resolution), decoder with one skip, per-pixel head.

    Example:
        >>> TinyUNet(num_classes=4)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 4, 32, 32])
    """

    def __init__(self, num_classes: int = 4, width: int = 16) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(conv_bn_relu(3, width), conv_bn_relu(width, width))
        self.pool = nn.MaxPool2d(2)
        self.enc2 = nn.Sequential(
            conv_bn_relu(width, 2 * width), conv_bn_relu(2 * width, 2 * width)
        )
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec = conv_bn_relu(3 * width, width)
        self.head = nn.Conv2d(width, num_classes, 1)
        init_conv_bn_(self)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.enc1(x)
        deep = self.up(self.enc2(self.pool(skip)))
        return self.head(self.dec(torch.cat([skip, deep], dim=1)))


@register_model(
    "seg_tiny",
    input_shape=(1, 3, 32, 32),
    num_classes=4,
    description="two-level U-Net for per-pixel classes (shapes_seg), 32x32",
    task="segmentation",
)
def seg_tiny(num_classes: int = 4) -> TinyUNet:
    return TinyUNet(num_classes)
