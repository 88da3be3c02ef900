"""A growing two-sided histogram kept in buffers: the statistics behind the clipping calibrators.

Each row (one per channel, or a single row per tensor) covers ``[-R, R]`` with
``bins`` equal bins. When a batch exceeds ``R`` the range doubles and adjacent bin
pairs merge, which is exact because bin edges stay aligned on 0 (the same idea as
the TensorRT calibrator of Migacz 2017, which also re-bins a growing histogram).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from edgeslim.quant.observers.base import Observer


class HistogramObserver(Observer):
    """Base class for calibrators that choose a range from a histogram."""

    def __init__(self, ch_axis: int | None = None, bins: int = 2048) -> None:
        super().__init__(ch_axis)
        if bins % 4:
            raise ValueError("bins must be a multiple of 4")
        self.bins = int(bins)
        self.register_buffer("hist", torch.empty(0))
        self.register_buffer("half_range", torch.empty(0))

    def observe(self, r: Tensor) -> None:
        amax = r.abs().amax(1).clamp(min=1e-8)
        if self.hist.numel() == 0:
            self.hist = torch.zeros(r.shape[0], self.bins, dtype=torch.float64)
            self.half_range = amax.clone()
        for i in torch.nonzero(amax > self.half_range).flatten().tolist():
            k = math.ceil(math.log2(float(amax[i] / self.half_range[i])))
            for _ in range(min(k, int(math.log2(self.bins)))):
                self.hist[i] = _double(self.hist[i])
            self.half_range[i] = self.half_range[i] * 2.0**k
        R = self.half_range[:, None]
        idx = ((r + R) / (2 * R) * self.bins).floor().clamp(0, self.bins - 1).long()
        idx = idx + torch.arange(r.shape[0])[:, None] * self.bins
        counts = torch.bincount(idx.flatten(), minlength=r.shape[0] * self.bins)
        self.hist += counts.view(r.shape[0], self.bins).double()

    def centers(self) -> Tensor:
        """Bin centres, ``(C, bins)``."""
        R = self.half_range.double()[:, None]
        j = torch.arange(self.bins, dtype=torch.float64)[None, :]
        return -R + (j + 0.5) * (2 * R / self.bins)

    def abs_hist(self) -> tuple[Tensor, Tensor]:
        """Histogram of ``|x|`` over ``[0, R]`` with ``bins / 2`` bins, and the bin width."""
        half = self.bins // 2
        folded = self.hist[:, half:] + self.hist[:, :half].flip(1)
        return folded, (self.half_range.double() / half)

    def clamp_to_observed(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        lo = torch.maximum(lo.float(), self.min_val)
        hi = torch.minimum(hi.float(), self.max_val)
        return lo, hi


def _double(h: Tensor) -> Tensor:
    """Histogram over ``[-2R, 2R]`` from one over ``[-R, R]``: pairs merge into the middle half."""
    n = h.numel()
    out = torch.zeros_like(h)
    out[n // 4 : n // 4 + n // 2] = h.view(n // 2, 2).sum(1)
    return out
