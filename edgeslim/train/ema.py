"""An exponential moving average of the weights, with YOLOv5's warm-up ramp.

Detectors (YOLOv5's ``ModelEMA``, Jocher et al.) and many classifiers evaluate and ship
the moving average of the trained weights rather than the last step's: it smooths the
noise of the last steps. ``torch.optim.swa_utils.AveragedModel`` keeps the copy and
updates it; this module only gives it YOLOv5's decay, which ramps up so that the first
updates follow the model closely::

    d(n) = decay * (1 - exp(-n / tau)),   ema = d * ema + (1 - d) * weights

over every floating-point parameter and buffer (BatchNorm statistics too).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def ramped_decay(decay: float, n: int, tau: float = 2000.0) -> float:
    """``decay * (1 - exp(-n / tau))``: 0 at the first update, ``decay`` in the long run.

    Example:
        >>> ramped_decay(0.9999, 0), round(ramped_decay(0.9999, 100_000), 4)
        (0.0, 0.9999)
    """
    return decay * (1.0 - math.exp(-n / tau))


def ema_model(model: nn.Module, decay: float, tau: float = 2000.0) -> AveragedModel:
    """An :class:`AveragedModel` of ``model`` that averages with :func:`ramped_decay`."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n) -> None:
        d = ramped_decay(decay, int(n), tau)
        floats = [(a, c) for a, c in zip(averaged, current, strict=True) if a.is_floating_point()]
        if floats:
            ema, now = zip(*floats, strict=True)
            torch._foreach_lerp_(list(ema), list(now), 1.0 - d)
        for a, c in zip(averaged, current, strict=True):  # counters (num_batches_tracked)
            if not a.is_floating_point():
                a.copy_(c)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)
