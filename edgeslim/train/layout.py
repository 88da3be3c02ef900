"""Channels-last (NHWC) training, with a guard for a oneDNN crash.

On the CPU build of torch 2.13 the weight gradient of a 1x1 convolution with
stride > 1 in NHWC segfaults for some small input widths (8 or 12 channels) with
an odd batch, in fp32 and bf16 alike: a ResNet shortcut of a narrow or pruned
network, on the last, smaller batch of an epoch (reproduced with one
``nn.Conv2d(8, 16, 1, stride=2)`` at batch 41; see ``tests/train/test_layout.py``).
Those convolutions are cheap, so they run in NCHW: their weight stays contiguous
and a pre-hook hands them a contiguous input; every other 4-D weight is NHWC.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def _strided_pointwise(m: nn.Module) -> bool:
    return (
        isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (1, 1) and any(s > 1 for s in m.stride)
    )


def _nchw_input(_module: nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(), *args[1:])


class ChannelsLast:
    """Put modules' weights in NHWC (same Parameters) until :meth:`restore`.

    Example:
        >>> layout = ChannelsLast([nn.Sequential(nn.Conv2d(8, 16, 1, stride=2))])
        >>> layout.restore()  # back to contiguous weights, hooks removed
    """

    def __init__(self, modules: list[nn.Module | None]) -> None:
        self.modules = [m for m in modules if m is not None]
        self.handles: list[RemovableHandle] = []
        for root in self.modules:
            root.to(memory_format=torch.channels_last)
            for m in root.modules():
                if _strided_pointwise(m):
                    # a (o, i, 1, 1) weight is "contiguous" in both layouts: clone to NCHW
                    # strides, or the conv still picks its NHWC kernel
                    m.weight.data = m.weight.data.clone(memory_format=torch.contiguous_format)
                    self.handles.append(m.register_forward_pre_hook(_nchw_input))

    def restore(self) -> None:
        """Remove the hooks and give every 4-D weight standard (NCHW) strides."""
        for h in self.handles:
            h.remove()
        self.handles.clear()
        for root in self.modules:  # a clone, not .to(): (o, i, 1, 1) weights count as contiguous
            for p in root.parameters():
                if p.dim() == 4:
                    p.data = p.data.clone(memory_format=torch.contiguous_format)
