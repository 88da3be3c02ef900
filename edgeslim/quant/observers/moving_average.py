"""Moving-average min-max: an exponential average of per-batch extremes.

Jacob et al. 2018, Section 3.1: activation ranges are smoothed across batches so
that one outlier batch does not set the range.
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgeslim.quant.observers.base import Observer
from edgeslim.quant.observers.registry import OBSERVERS


@OBSERVERS.register("ema_minmax")
class MovingAverageMinMaxObserver(Observer):
    """``m <- (1 - c) m + c batch_min`` (and the same for the max); the first batch initialises.

    Example:
        >>> o = MovingAverageMinMaxObserver(momentum=0.5)
        >>> _ = o(torch.tensor([0.0, 2.0])); _ = o(torch.tensor([0.0, 4.0]))
        >>> float(o.range(0, 255, False)[1])
        3.0
    """

    def __init__(self, ch_axis: int | None = None, momentum: float = 0.1) -> None:
        super().__init__(ch_axis)
        self.momentum = float(momentum)
        self.register_buffer("avg_min", torch.empty(0))
        self.register_buffer("avg_max", torch.empty(0))

    def observe(self, r: Tensor) -> None:
        lo, hi = r.amin(1), r.amax(1)
        if self.avg_min.numel() == 0:
            self.avg_min, self.avg_max = lo, hi
        else:
            c = self.momentum
            self.avg_min = (1 - c) * self.avg_min + c * lo
            self.avg_max = (1 - c) * self.avg_max + c * hi

    def range(self, qmin: int, qmax: int, symmetric: bool) -> tuple[Tensor, Tensor]:
        return self.avg_min.clone(), self.avg_max.clone()
