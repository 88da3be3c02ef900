"""Min-max calibration: the full observed range, never clipped (Jacob et al. 2018)."""

from __future__ import annotations

from torch import Tensor

from edgeslim.quant.observers.base import Observer
from edgeslim.quant.observers.registry import OBSERVERS


@OBSERVERS.register("minmax")
class MinMaxObserver(Observer):
    """Running minimum and maximum over everything observed.

    Example:
        >>> import torch
        >>> o = MinMaxObserver(); _ = o(torch.tensor([-1.0, 2.0])); _ = o(torch.tensor([3.0]))
        >>> [float(v) for v in o.range(0, 255, False)]
        [-1.0, 3.0]
    """

    def range(self, qmin: int, qmax: int, symmetric: bool) -> tuple[Tensor, Tensor]:
        return self.min_val.clone(), self.max_val.clone()
