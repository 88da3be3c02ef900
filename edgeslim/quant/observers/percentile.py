"""Percentile calibration: clip the range at a high percentile of the observed values.

McKinstry et al. and Wu et al., "Integer Quantization for Deep Learning
Inference" (NVIDIA, arXiv:2004.09602), Section 4.2: 99.9-99.999 percentiles
clip rare outliers and spend the grid on the bulk of the distribution.
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgeslim.quant.observers.histogram import HistogramObserver
from edgeslim.quant.observers.registry import OBSERVERS


@OBSERVERS.register("percentile")
class PercentileObserver(HistogramObserver):
    """Range ``[q_(100-p), q_p]`` of the observed values (two-sided), from the histogram.

    Example:
        >>> o = PercentileObserver(percentile=99.0); _ = o(torch.arange(1000.0))
        >>> round(float(o.range(0, 255, False)[1]), -1)
        990.0
    """

    def __init__(
        self, ch_axis: int | None = None, bins: int = 2048, percentile: float = 99.99
    ) -> None:
        super().__init__(ch_axis, bins)
        self.percentile = float(percentile)

    def range(self, qmin: int, qmax: int, symmetric: bool) -> tuple[Tensor, Tensor]:
        cdf = self.hist.cumsum(1)
        cdf = cdf / cdf[:, -1:].clamp(min=1)
        p = self.percentile / 100.0
        R = self.half_range.double()
        width = 2 * R / self.bins
        hi_bin = (cdf < p).sum(1)  # first bin whose cdf reaches p
        lo_bin = (cdf < 1 - p).sum(1)
        hi = -R + (hi_bin + 1).double() * width
        lo = -R + lo_bin.double() * width
        return self.clamp_to_observed(torch.minimum(lo, torch.zeros_like(lo)), hi)
