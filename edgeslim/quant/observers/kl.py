"""KL-divergence (entropy) calibration: the TensorRT INT8 algorithm.

Migacz, "8-bit Inference with TensorRT", GTC 2017. For every candidate
threshold ``T`` (a bin edge of the ``|x|`` histogram), the reference
distribution ``P`` is the histogram up to ``T`` with the clipped tail added to
its last bin; ``Q`` is ``P`` merged into ``2^(bits-1)`` levels and expanded back
over the non-empty bins. The threshold that minimises ``KL(P || Q)`` wins and
the range is ``[-T, T]`` intersected with what was observed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from edgeslim.quant.observers.histogram import HistogramObserver
from edgeslim.quant.observers.registry import OBSERVERS


def kl_threshold(
    hist: np.ndarray, width: float, levels: int = 128, start: int | None = None
) -> float:
    """TensorRT threshold for a one-sided ``|x|`` histogram of bin ``width``.

    Example:
        >>> h = np.histogram(np.abs(np.random.default_rng(0).normal(size=200_000)), 1024, (0, 6))[0]
        >>> 2.5 < kl_threshold(h.astype(float), 6 / 1024) < 5.0
        True
    """
    hist = hist.astype(np.float64)
    n = hist.size
    start = start or levels
    best_i, best_kl = n, np.inf
    for i in range(start, n + 1):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        nonzero = p > 0
        # merge the first i bins (without the tail) into `levels` levels, then spread
        # each level evenly over its non-empty bins of P (vectorised with reduceat)
        edges = np.linspace(0, i, levels + 1).astype(int)[:-1]
        sums = np.add.reduceat(hist[:i], edges)
        counts = np.add.reduceat(nonzero.astype(np.float64), edges)
        level = np.searchsorted(edges, np.arange(i), side="right") - 1
        per_bin = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        q = np.where(nonzero, per_bin[level], 0.0)
        ps, qs = p[nonzero], q[nonzero]
        if qs.sum() <= 0:
            continue
        ps = ps / ps.sum()
        # smoothing as in the reference implementations: a clipped tail bin that Q
        # leaves empty costs a large but finite divergence
        qs = np.where(qs > 0, qs / qs.sum(), 1e-4)
        qs = qs / qs.sum()
        kl = float(np.sum(ps * np.log(ps / qs)))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return (best_i + 0.5) * width


@OBSERVERS.register("kl")
class KLObserver(HistogramObserver):
    """Entropy calibration (per tensor; per-channel rows are solved independently).

    Example:
        >>> o = KLObserver(); _ = o(torch.randn(100_000))
        >>> 2.0 < float(o.range(-128, 127, True)[1]) < 5.0
        True
    """

    def range(self, qmin: int, qmax: int, symmetric: bool) -> tuple[Tensor, Tensor]:
        folded, width = self.abs_hist()
        # zero is exact for every threshold, so the spike of ReLU zeros says nothing about T;
        # left in, it dominates KL and drags T far too low
        folded = folded.clone()
        folded[:, 0] = torch.minimum(folded[:, 0], folded[:, 1])
        # a signed grid spends half its codes on each side; non-negative data gets them all
        levels = qmax - qmin + 1 if bool(self.min_val.min() >= 0) else (qmax - qmin + 1) // 2
        levels = max(2, levels)
        t = [
            kl_threshold(folded[i].numpy(), float(width[i]), levels, start=levels)
            for i in range(folded.shape[0])
        ]
        T = torch.tensor(t, dtype=torch.float32)
        return self.clamp_to_observed(-T, T)
