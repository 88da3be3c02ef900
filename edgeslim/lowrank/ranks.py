"""Rank rules: how many components a factorization keeps.

One frozen :class:`RankRule` per layer says how its rank is chosen; exactly one of

* ``rank``: a fixed rank (clipped to the largest one the layer has);
* ``energy``: the smallest rank whose singular values keep this fraction of the
  squared Frobenius norm, :math:`\\sum_{i<r} s_i^2 / \\sum_i s_i^2 \\ge E`
  (by Eckart–Young the discarded energy is exactly the squared error of the
  truncated SVD);
* ``ratio``: the largest rank whose factorized layer has at most this fraction of
  the layer's parameters (for a convolution that keeps its stride, also of its MACs);
* ``vbmf``: the rank that empirical variational Bayesian matrix factorization finds
  (:mod:`edgeslim.lowrank.evbmf`; Kim et al. 2016 chose Tucker-2 ranks this way).

The functions here take singular values or a cost function and return integers;
they never see a layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeslim.core.errors import EdgeslimError


@dataclass(frozen=True)
class RankRule:
    """How one layer's rank is chosen; set exactly one of ``rank``, ``energy``, ``ratio``, ``vbmf``.

    Args:
        rank: keep this many components.
        energy: keep the smallest rank with this fraction (0, 1] of the squared
            singular values.
        ratio: keep the largest rank with at most this fraction (0, 1] of the
            layer's parameters.
        vbmf: choose the rank by EVBMF (Nakajima et al. 2013).
        allow_larger: factorize even where the factors have as many parameters as
            the layer or more (otherwise such layers are left alone, with the reason
            in the record).

    Example:
        >>> RankRule(energy=0.9).kind
        'energy'
    """

    rank: int | None = None
    energy: float | None = None
    ratio: float | None = None
    vbmf: bool = False
    allow_larger: bool = False

    def __post_init__(self) -> None:
        chosen = [k for k in ("rank", "energy", "ratio") if getattr(self, k) is not None]
        chosen += ["vbmf"] if self.vbmf else []
        if len(chosen) != 1:
            raise EdgeslimError(
                "a rank rule needs exactly one of rank, energy, ratio, vbmf; "
                f"got {', '.join(chosen) or 'none'}"
            )
        if self.rank is not None and self.rank < 1:
            raise EdgeslimError(f"rank must be >= 1, got {self.rank}")
        for k in ("energy", "ratio"):
            v = getattr(self, k)
            if v is not None and not 0 < v <= 1:
                raise EdgeslimError(f"{k} must be in (0, 1], got {v}")

    @property
    def kind(self) -> str:
        """``"rank"``, ``"energy"``, ``"ratio"`` or ``"vbmf"``."""
        if self.vbmf:
            return "vbmf"
        return next(k for k in ("rank", "energy", "ratio") if getattr(self, k) is not None)


def energy_rank(s: np.ndarray, energy: float) -> int:
    """The smallest ``r`` with ``sum(s[:r]**2) >= energy * sum(s**2)`` (at least 1).

    Example:
        >>> energy_rank(np.array([3.0, 1.0, 0.0]), 0.9)
        1
    """
    sq = np.sort(np.asarray(s, dtype=np.float64) ** 2)[::-1]
    total = sq.sum()
    if total <= 0:
        return 1
    kept = np.cumsum(sq) / total
    # a relative tolerance so that energy=1.0 is met by the full rank despite rounding
    return max(1, int(np.searchsorted(kept, energy - 1e-12) + 1))


def energy_kept(s: np.ndarray, rank: int) -> float:
    """The fraction of ``sum(s**2)`` in the ``rank`` largest singular values."""
    sq = np.sort(np.asarray(s, dtype=np.float64) ** 2)[::-1]
    total = sq.sum()
    return float(sq[:rank].sum() / total) if total > 0 else 1.0


def ratio_rank(cost: Callable[[int], int], full: int, ratio: float, max_rank: int) -> int:
    """The largest ``r <= max_rank`` with ``cost(r) <= ratio * full`` (at least 1).

    ``cost`` must grow with ``r``.

    Example:
        >>> ratio_rank(lambda r: r * (64 + 32), 64 * 32, 0.5, 32)
        10
    """
    budget = ratio * full
    lo, hi = 1, max_rank
    if cost(lo) > budget:
        return 1
    while lo < hi:  # bisection on a monotone cost
        mid = (lo + hi + 1) // 2
        if cost(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def matrix_rank(rule: RankRule, matrix: np.ndarray, cost: Callable[[int], int], full: int) -> int:
    """The rank ``rule`` gives ``matrix``.

    ``cost(r)`` is the factorized layer's parameter count at rank ``r``, ``full``
    the layer's own. Only ``energy`` computes singular values.
    """
    max_rank = min(matrix.shape)
    if rule.rank is not None:
        return min(rule.rank, max_rank)
    if rule.ratio is not None:
        return ratio_rank(cost, full, rule.ratio, max_rank)
    if rule.energy is not None:
        s = np.linalg.svd(np.asarray(matrix, dtype=np.float64), compute_uv=False)
        return energy_rank(s, rule.energy)
    from edgeslim.lowrank.evbmf import evbmf

    return max(1, evbmf(matrix).rank)
