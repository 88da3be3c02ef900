"""ACIQ: analytical clipping for integer quantization.

Banner, Nahshan, Soudry, "Post-training 4-bit quantization of convolutional
networks for rapid-deployment", NeurIPS 2019 (arXiv:1810.05723), Section 3.
Modelling the tensor as Laplace(mu, b) or Gaussian(mu, sigma), the expected
squared error of clipping at ``alpha`` and quantizing ``[-alpha, alpha]`` to
``2^M`` levels is

* Laplace: ``2 b^2 exp(-alpha / b) + alpha^2 / (3 * 4^M)``
* Gaussian: ``(alpha^2 + s^2)(1 - erf(alpha / (sqrt(2) s))) - sqrt(2/pi) alpha s
  exp(-alpha^2 / (2 s^2)) + alpha^2 / (3 * 4^M)``

and the optimal ``alpha`` is a constant times ``b`` (or ``sigma``) per bit width
(Laplace: 2.83b at 2 bits ... 9.89b at 8 bits). The distribution parameters are
estimated from the observed histogram.

A signed tensor is clipped to ``mu +- alpha`` with every level of the grid.
A non-negative tensor (a ReLU output) is modelled as ``max(0, z)`` with ``z``
centred at 0: its scale comes from the positive values alone, and since all the
levels then cover half a distribution, ``alpha`` is the optimum for one bit more
(``M + 1``), as in Banner et al.'s treatment of ReLU activations.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from scipy.optimize import minimize_scalar
from torch import Tensor

from edgeslim.quant.observers.histogram import HistogramObserver
from edgeslim.quant.observers.registry import OBSERVERS

DISTRIBUTIONS = ("laplace", "gauss")


def expected_mse(alpha: float, bits: int, dist: str) -> float:
    """Banner et al.'s expected MSE at clipping ``alpha`` for a unit-scale distribution."""
    noise = alpha**2 / (3 * 4**bits)
    if dist == "laplace":
        return 2.0 * math.exp(-alpha) + noise
    clip = (alpha**2 + 1) * (1 - math.erf(alpha / math.sqrt(2))) - math.sqrt(
        2 / math.pi
    ) * alpha * math.exp(-(alpha**2) / 2)
    return clip + noise


@lru_cache(maxsize=64)
def optimal_alpha(bits: int, dist: str = "laplace") -> float:
    """Optimal clipping in units of ``b`` (Laplace) or ``sigma`` (Gaussian).

    Example:
        >>> round(optimal_alpha(4, "laplace"), 2), round(optimal_alpha(8, "gauss"), 2)
        (5.03, 3.92)
    """
    if dist not in DISTRIBUTIONS:
        raise ValueError(f"ACIQ distribution {dist!r}: choose {DISTRIBUTIONS}")
    res = minimize_scalar(
        lambda a: expected_mse(a, bits, dist),
        bounds=(0.1, 40.0),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(res.x)


class _ACIQ(HistogramObserver):
    dist = "laplace"

    def range(self, qmin: int, qmax: int, symmetric: bool) -> tuple[Tensor, Tensor]:
        c, n = self.centers(), self.hist
        total = n.sum(1).clamp(min=1)
        mu = (c * n).sum(1) / total
        if self.dist == "laplace":
            spread = ((c - mu[:, None]).abs() * n).sum(1) / total
        else:
            spread = (((c - mu[:, None]) ** 2 * n).sum(1) / total).sqrt()
        levels = qmax - qmin + 1
        lo = mu - optimal_alpha(_bits(levels), self.dist) * spread
        hi = mu + optimal_alpha(_bits(levels), self.dist) * spread
        one_sided = self.min_val >= 0
        if bool(one_sided.any()):
            # after a ReLU: model x = max(0, z), z ~ Laplace(0, b) or N(0, sigma), from the
            # positive values alone (mean and spread of the rectified data, zeros included,
            # underestimate b and sigma). All the levels that cover [0, alpha] quantize half a
            # distribution: its optimum is the two-sided one with one bit more (Banner et
            # al.'s M + 1 for ReLU outputs), unless a signed symmetric grid wastes half.
            pos_levels = levels if (qmin >= 0 or not symmetric) else qmax + 1
            alpha = optimal_alpha(_bits(pos_levels) + 1, self.dist) * self._positive_scale()
            lo = torch.where(one_sided, torch.zeros_like(lo), lo)
            hi = torch.where(one_sided, alpha.to(hi.dtype), hi)
        return self.clamp_to_observed(lo, hi)

    def _positive_scale(self) -> Tensor:
        """``b`` (Laplace) or ``sigma`` (Gaussian) of ``z`` from the values of ``max(0, z)`` > 0.

        The first positive bin also holds the exact zeros, so it is left out: for a
        Laplace tail ``E[x - w | x > w] = b`` exactly (memoryless), for a Gaussian the
        second moment above ``w`` (a bin width, a fraction of a percent of the range)
        is ``sigma^2`` to within a fraction of a percent.
        """
        half = self.bins // 2
        w = self.half_range.double()[:, None] / half
        c = self.centers()[:, half + 1 :]
        n = self.hist[:, half + 1 :]
        total = n.sum(1).clamp(min=1)
        if self.dist == "laplace":
            return ((c - w) * n).sum(1) / total
        return ((c**2 * n).sum(1) / total).sqrt()


def _bits(levels: int) -> int:
    return max(2, round(math.log2(levels)))


@OBSERVERS.register("aciq")
class ACIQLaplaceObserver(_ACIQ):
    """ACIQ with a Laplace prior (Banner et al.'s default for activations).

    Example:
        >>> import torch
        >>> o = ACIQLaplaceObserver(); _ = o(torch.distributions.Laplace(0., 1.).sample((200_000,)))
        >>> abs(float(o.range(-8, 7, True)[1]) - 5.03) < 0.2  # 4 bits: alpha = 5.03 b
        True
    """

    dist = "laplace"


@OBSERVERS.register("aciq_gauss")
class ACIQGaussObserver(_ACIQ):
    """ACIQ with a Gaussian prior."""

    dist = "gauss"
