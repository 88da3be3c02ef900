"""Channels-last training layout and its guard for torch's NHWC 1x1/stride-2 crash."""

import subprocess
import sys

import torch
from torch import nn

from edgeslim.train.layout import ChannelsLast

# One training step of a narrow ResNet-style shortcut at an odd batch: segfaults in
# torch 2.13's NHWC weight gradient unless the strided 1x1 conv runs NCHW.
STEP = """
import torch
from torch import nn
from edgeslim.train.layout import ChannelsLast
net = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 16, 1, stride=2))
layout = ChannelsLast([net])
x = torch.randn(41, 8, 32, 32).contiguous(memory_format=torch.channels_last)
for _ in range(3):
    net(x).pow(2).sum().backward()
layout.restore()
print("ok")
"""


def test_strided_pointwise_conv_trains_at_an_odd_batch_in_a_subprocess():
    r = subprocess.run([sys.executable, "-c", STEP], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_layout_is_nhwc_except_strided_pointwise_and_restores():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 1, stride=2))
    params = [id(p) for p in net.parameters()]
    x = torch.randn(2, 3, 16, 16)
    ref = net(x)
    layout = ChannelsLast([net, None])
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not net[0].weight.is_contiguous()
    assert net[1].weight.stride() == (8, 1, 1, 1)  # NCHW strides, not the ambiguous NHWC ones
    assert torch.allclose(net(x.contiguous(memory_format=torch.channels_last)), ref, atol=1e-5)
    layout.restore()
    assert [id(p) for p in net.parameters()] == params  # same Parameters: optimizer intact
    assert all(p.stride() == torch.empty(p.shape).stride() for p in net.parameters())
    assert not net[1]._forward_pre_hooks
