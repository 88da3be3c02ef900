"""Small test models with the layer patterns PTQ must handle: concat, depthwise, SE, residual."""

import torch
from torch import nn


def cbr(i, o, k=3, s=1, g=1, act=nn.ReLU):
    return nn.Sequential(
        nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o), act()
    )


class ConcatNet(nn.Module):
    """Two branches concatenated (Inception / YOLO neck style)."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = cbr(3, 16)
        self.a = cbr(16, 8, 1)
        self.b = cbr(16, 8, 3)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))

    def forward(self, x):
        x = self.pool(self.stem(x))
        return self.head(torch.cat([self.a(x), self.b(x)], 1))


class DepthwiseNet(nn.Module):
    """Depthwise-separable blocks with ReLU6 and a linear-bottleneck residual."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = cbr(3, 16, act=nn.ReLU6)
        self.dw = cbr(16, 16, 3, 1, 16, act=nn.ReLU6)
        self.pw = nn.Sequential(nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.down = cbr(16, 32, 3, 2, act=nn.ReLU6)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.pw(self.dw(x))
        x = self.down(x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class SENet(nn.Module):
    """Squeeze-and-excitation: a sigmoid gate multiplies the feature map."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = cbr(3, 16)
        self.body = cbr(16, 32, 3, 2)
        self.se_pool = nn.AdaptiveAvgPool2d(1)
        self.se1 = nn.Conv2d(32, 8, 1)
        self.se2 = nn.Conv2d(8, 32, 1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.body(self.stem(x))
        g = torch.sigmoid(self.se2(torch.relu(self.se1(self.se_pool(x)))))
        x = x * g
        return self.fc(torch.flatten(self.se_pool(x), 1))


class ResNetTiny(nn.Module):
    """conv-bn-relu stem, one residual block, pooling, classifier."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = cbr(3, 16)
        self.c1 = cbr(16, 16)
        self.c2 = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16))
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.pool(self.stem(x))
        x = self.relu(x + self.c2(self.c1(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


NETS = {"concat": ConcatNet, "depthwise": DepthwiseNet, "se": SENet, "resnet_tiny": ResNetTiny}
