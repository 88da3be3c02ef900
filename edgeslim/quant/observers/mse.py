"""MSE calibration: search the clipping range that minimises the expected squared error.

The error of a candidate range is computed on the histogram (each bin centre
quantized with the candidate's scale and zero-point, weighted by its count), so
the search models clipping *and* rounding for the exact target grid, as in
Banner et al. 2019 and NVIDIA's "Integer Quantization for Deep Learning Inference"
(arXiv:2004.09602) MSE calibrator.
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgeslim.quant.observers.histogram import HistogramObserver
from edgeslim.quant.observers.registry import OBSERVERS
from edgeslim.quant.primitives import choose_qparams


@OBSERVERS.register("mse")
class MSEObserver(HistogramObserver):
    """Shrink the min-max range by a factor ``a`` in ``(0, 1]``; keep the ``a`` with least MSE.

    Example:
        >>> o = MSEObserver(); x = torch.randn(100_000); x[0] = 40.0; _ = o(x)
        >>> float(o.range(-8, 7, True)[1]) < 10.0  # the lone outlier is clipped
        True
    """

    def __init__(self, ch_axis: int | None = None, bins: int = 2048, steps: int = 100) -> None:
        super().__init__(ch_axis, bins)
        self.steps = int(steps)

    def range(self, qmin: int, qmax: int, symmetric: bool) -> tuple[Tensor, Tensor]:
        c = self.centers().float()  # (C, B)
        n = self.hist.float()
        alphas = torch.linspace(1.0 / self.steps, 1.0, self.steps)  # (A,)
        lo = self.min_val[None, :] * alphas[:, None]  # (A, C)
        hi = self.max_val[None, :] * alphas[:, None]
        scale, zero = choose_qparams(lo, hi, qmin, qmax, symmetric=symmetric)
        s, z = scale[..., None], zero[..., None].float()
        q = torch.clamp(torch.round(c[None] / s) + z, qmin, qmax)
        err = ((c[None] - (q - z) * s) ** 2 * n[None]).sum(-1)  # (A, C)
        best = err.argmin(0)
        idx = torch.arange(best.numel())
        return lo[best, idx], hi[best, idx]
