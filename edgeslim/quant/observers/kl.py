"""KL-divergence (entropy) calibration: the TensorRT INT8 algorithm.

Migacz, "8-bit Inference with TensorRT", GTC 2017. A histogram of ``|x|`` with
2048 bins over ``[0, amax]``; for every candidate threshold ``T`` (the upper
edge of bin ``i``, ``i`` from the number of levels up to 2048), the reference
distribution ``P`` is the histogram up to ``T`` with the clipped tail added to
its last bin, ``Q`` is the same bins (without the tail) merged into as many
levels as the grid has and spread evenly back over the non-empty bins. The
threshold that minimises ``KL(P || Q)`` wins (the largest one on ties). A
candidate whose last bin is empty while the tail is not has ``Q = 0`` where
``P > 0``; as in MXNet's implementation that bin of ``Q`` is smoothed to
``eps = 1e-4`` counts, so clipping a few far outliers costs a finite
divergence and can win (NVIDIA's ``pytorch-quantization`` leaves it infinite
and then never clips outliers that sit beyond empty bins). As in
``pytorch-quantization`` the zero bin is set to its neighbour first, so that the
spike of exact zeros after a ReLU (which every threshold represents exactly)
does not decide ``T``.

edgeslim's activations are *asymmetric* ``uint8``, not TensorRT's symmetric
``int8``. Folding a sign-asymmetric tensor onto ``|x|`` is wrong there: a
spike on one side (an image's background) hides a clipped tail on the other
side (its bright strokes) in the same bin, and the fold then clips the signal.
So an asymmetric grid gets one threshold per side, each from that side's own
histogram with that side's share of the levels (zero splits the grid in
proportion to the two thresholds; two or three rounds settle the split).
Non-negative data uses all the levels on one side, like
``pytorch-quantization``'s unsigned mode; a symmetric grid keeps TensorRT's
fold.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from edgeslim.quant.observers.histogram import HistogramObserver
from edgeslim.quant.observers.registry import OBSERVERS

TRT_BINS = 2048  # TensorRT's |x| histogram resolution
SMOOTHING = 1e-4  # counts given to Q's empty last bin when the clipped tail lands there


def kl_divergences(
    hist: np.ndarray, levels: int, start: int | None = None, eps: float = SMOOTHING
) -> np.ndarray:
    """``KL(P || Q)`` for every candidate ``i`` in ``[start, len(hist)]``.

    ``inf`` where nothing is left below the threshold.

    Vectorised over candidates with prefix sums: per candidate the cost is one pass
    over the ``levels`` levels, not over the ``i`` bins. Level ``k`` holds the bins
    ``j`` with ``linspace(0, i, levels + 1)[k] <= j < ...[k + 1]``, exactly as
    ``np.digitize`` assigns them in the reference implementation.
    """
    h = np.asarray(hist, dtype=np.float64)
    n = h.size
    start = levels if start is None else max(1, int(start))
    cand = np.arange(start, n + 1)
    if cand.size == 0:
        return np.zeros(0)
    total = h.sum()
    csum = np.concatenate([[0.0], np.cumsum(h)])
    cnz = np.concatenate([[0.0], np.cumsum(h > 0)])
    hlogh = np.where(h > 0, h * np.log(np.where(h > 0, h, 1.0)), 0.0)
    chl = np.concatenate([[0.0], np.cumsum(hlogh)])
    # level boundaries per candidate: ceil of the float linspace reproduces np.digitize
    edges = np.ceil(np.linspace(0.0, cand.astype(np.float64), levels + 1, axis=1)).astype(int)
    lsum = csum[edges[:, 1:]] - csum[edges[:, :-1]]  # (candidates, levels)
    lnz = cnz[edges[:, 1:]] - cnz[edges[:, :-1]]
    q = np.divide(lsum, lnz, out=np.zeros_like(lsum), where=lnz > 0)
    # sum_j P_j log q_j over the inner bins (P_j = h_j): each level contributes sum * log q
    sum_p_log_q = np.where(lsum > 0, lsum * np.log(np.where(q > 0, q, 1.0)), 0.0).sum(1)
    tail = total - csum[cand]
    last = h[cand - 1]
    # the last bin always lies in the last level; empty, it gets the smoothing mass
    smoothed = (last == 0) & (tail > 0)
    q_last = np.where(smoothed, eps, q[:, -1])
    tail_log_q = np.where(tail > 0, tail * np.log(np.where(q_last > 0, q_last, 1.0)), 0.0)
    sum_p_log_q = sum_p_log_q + tail_log_q
    p_last = last + tail
    sum_p_log_p = chl[cand - 1] + np.where(
        p_last > 0, p_last * np.log(np.where(p_last > 0, p_last, 1.0)), 0.0
    )
    inner = csum[cand]  # the bins up to i without the tail
    q_total = inner + np.where(smoothed, eps, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = (sum_p_log_p - sum_p_log_q) / total - np.log(total) + np.log(q_total)
    return np.where(inner <= 0, np.inf, np.maximum(kl, 0.0))


def kl_threshold(
    hist: np.ndarray, width: float, levels: int = 128, start: int | None = None
) -> float:
    """TensorRT threshold ``i * width`` for a one-sided ``|x|`` histogram of bin ``width``.

    ``start`` defaults to ``levels`` (every level at least one bin wide). Ties go to
    the largest threshold.

    Example:
        >>> h = np.histogram(np.abs(np.random.default_rng(0).normal(size=200_000)), 2048, (0, 6))[0]
        >>> 3.0 < kl_threshold(h.astype(float), 6 / 2048) < 5.0
        True
    """
    start = levels if start is None else start
    kl = kl_divergences(hist, levels, start)
    if kl.size == 0 or not np.isfinite(kl).any():
        return float(np.asarray(hist).size * width)
    best = kl.size - 1 - int(np.argmin(kl[::-1]))
    return float((best + start) * width)


def trt_histogram(side: np.ndarray, width: float, amax: float, bins: int = TRT_BINS) -> np.ndarray:
    """Re-bin a one-sided histogram (bins of ``width`` from 0) to ``bins`` bins on ``[0, amax]``.

    Counts are split in proportion to overlap (uniform within a source bin); the
    source is several times finer, so the split moves little mass. Everything
    observed lies below ``amax``: any remainder goes to the last bin.
    """
    side = np.asarray(side, dtype=np.float64)
    src = np.concatenate([[0.0], np.cumsum(side)])
    at = np.interp(np.linspace(0.0, amax, bins + 1), np.arange(side.size + 1) * width, src)
    out = np.diff(at)
    out[-1] += src[-1] - at[-1]
    return np.maximum(out, 0.0)


def side_threshold(side: np.ndarray, width: float, amax: float, levels: int) -> float:
    """TensorRT threshold of one side: ``|x|`` histogram ``side`` from 0, observed max ``amax``."""
    if amax <= 0 or side.sum() <= 0:
        return 0.0
    h = trt_histogram(side, width, amax)
    h[0] = h[1]  # the zero spike says nothing about T (pytorch-quantization does the same)
    if levels >= h.size:
        return amax
    return min(kl_threshold(h, amax / h.size, levels), amax)


@OBSERVERS.register("kl")
class KLObserver(HistogramObserver):
    """Entropy calibration (per tensor; per-channel rows are solved independently).

    The histogram is finer than TensorRT's (``bins`` over ``[-R, R]``, the observed
    range filling at least half of each side's ``bins / 2``) and is re-binned to
    TensorRT's 2048 bins over each side's observed range before the search.

    Example:
        >>> o = KLObserver(); _ = o(torch.randn(100_000))
        >>> 2.5 < float(o.range(-128, 127, True)[1]) < 5.0
        True
    """

    def __init__(self, ch_axis: int | None = None, bins: int = 8192) -> None:
        super().__init__(ch_axis, bins)

    def range(self, qmin: int, qmax: int, symmetric: bool) -> tuple[Tensor, Tensor]:
        total = qmax - qmin + 1
        half = self.bins // 2
        width = (self.half_range.double() / half).tolist()
        lo, hi = [], []
        for r in range(self.hist.shape[0]):
            h = self.hist[r].numpy()
            neg_h, pos_h = h[:half][::-1], h[half:]
            mn, mx = float(self.min_val[r]), float(self.max_val[r])
            if symmetric:
                # a signed grid spends half its codes on each side, an unsigned one all
                levels = total if qmin >= 0 else total // 2
                t = side_threshold(neg_h + pos_h, width[r], max(-mn, mx), max(2, levels))
                lo.append(-t)
                hi.append(t)
                continue
            t_neg, t_pos = max(-mn, 0.0), max(mx, 0.0)
            split = None
            for _ in range(4):  # the levels each side gets depend on both thresholds
                n_pos = int(round(total * t_pos / max(t_neg + t_pos, 1e-30)))
                n_pos = min(max(n_pos, 0), total)
                if n_pos == split:
                    break
                split = n_pos
                if n_pos >= 2:
                    t_pos = side_threshold(pos_h, width[r], max(mx, 0.0), n_pos)
                if total - n_pos >= 2:
                    t_neg = side_threshold(neg_h, width[r], max(-mn, 0.0), total - n_pos)
            lo.append(-t_neg)
            hi.append(t_pos)
        return self.clamp_to_observed(torch.tensor(lo), torch.tensor(hi))
