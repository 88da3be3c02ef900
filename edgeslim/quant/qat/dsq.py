"""DSQ: differentiable soft quantization with a learned characteristic variable alpha.

Gong et al., "Differentiable Soft Quantization: Bridging Full-Precision and
Low-Bit Neural Networks", ICCV 2019 (arXiv:1908.05033), Section 3:

* the clipped range ``[l, u]`` is cut into ``2^b - 1`` intervals of width
  ``Delta = (u - l) / (2^b - 1)``; ``x`` in interval ``i`` (centre ``m_i``) maps to
  ``phi(x) = s tanh(k (x - m_i))`` (eq. 4) with ``s = 1 / tanh(k Delta / 2)``;
* the DSQ function (eq. 3): ``Q_S(x) = l + Delta (i + (phi(x) + 1) / 2)``, ``l``
  below the range, ``u`` above;
* ``k`` comes from the characteristic variable ``alpha = 1 - tanh(k Delta / 2)``
  (eq. 6), i.e. ``k = log(2 / alpha - 1) / Delta``, ``s = 1 / (1 - alpha)``;
  alpha is learned and kept in ``(0, 0.5)`` (small alpha: close to rounding);
* forward: ``sign(phi)`` replaces ``phi``, which is ordinary rounding onto the
  grid (Section 3.3), while the backward pass takes the gradient of the smooth
  ``Q_S`` for ``x``, ``u`` and ``alpha``; with ``soft_forward`` the training
  forward pass is ``Q_S`` itself (values off the grid).

The paper learns both ``l`` and ``u``; here ``l = -u`` (weights, inputs that
calibration saw go negative) or ``l = 0`` (non-negative inputs), so that every
grid is symmetric or starts at zero, which is what an integer kernel stores.
Export needs :func:`~edgeslim.quant.qat.export.harden_` (the gradient and
``soft_forward`` are no affine quantization).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgeslim.core.methods import register_method
from edgeslim.quant.qat.common import Grid, QATConfig, Quantizer, bshape
from edgeslim.quant.qat.handler import QATMethod

ALPHA_INIT = 0.2  # the paper's initial characteristic variable
ALPHA_MAX = 0.5


def dsq(x: Tensor, lo: Tensor, hi: Tensor, alpha: Tensor, levels: int) -> tuple[Tensor, Tensor]:
    """``(hard, soft)``: the grid value and the DSQ function ``Q_S`` (eq. 3-6)."""
    delta = (hi - lo) / levels
    xc = torch.minimum(torch.maximum(x, lo), hi)
    i = torch.clamp(torch.floor((xc - lo) / delta), 0, levels - 1).detach()
    centre = lo + (i + 0.5) * delta
    k = torch.log(2 / alpha - 1) / delta
    phi = torch.tanh(k * (xc - centre)) / (1 - alpha)
    soft = lo + delta * (i + (phi + 1) / 2)
    hard = lo + delta * (i + (phi.detach() >= 0).to(x.dtype))
    return hard, soft


class DSQQuantizer(Quantizer):
    """Learned bound ``u`` and characteristic variable ``alpha``."""

    affine = False

    def __init__(self, bits: int, channels: int | None = None, soft_forward: bool = False) -> None:
        super().__init__(bits, signed=channels is not None)
        self.is_weight = channels is not None
        self.per_channel = self.is_weight
        self.soft_forward = soft_forward
        self.upper = nn.Parameter(torch.ones(channels or 1))
        self.alpha = nn.Parameter(torch.tensor([ALPHA_INIT]))

    def init_from(self, lo: Tensor, hi: Tensor, mean_abs: float) -> None:
        if self.is_weight:
            self.signed = True
        bound = torch.maximum(hi, -lo) if bool(self.signed) else hi
        self.upper.copy_(bound.reshape(self.upper.shape).clamp_min(1e-6))

    def _bounds(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u = bshape(self.upper.abs().clamp_min(1e-6), x)
        return (-u if bool(self.signed) else torch.zeros_like(u)), u

    def quantize(self, x: Tensor) -> Tensor:
        lo, hi = self._bounds(x)
        alpha = self.alpha.clamp(1e-4, ALPHA_MAX - 1e-4).reshape(())
        hard, soft = dsq(x, lo, hi, alpha, 2**self.bits - 1)
        if self.training and self.soft_forward:
            return soft
        return soft + (hard - soft).detach()

    def grid(self, x: Tensor | None = None) -> Grid | None:
        """Weights: odd multiples of ``Delta / 2``; unsigned inputs: ``Delta j``.

        A signed input's levels are odd multiples of ``Delta / 2`` too, which no
        rounding of ``x / S`` produces: it has no grid (None).
        """
        n = 2**self.bits - 1
        u = self.upper.detach().abs().clamp_min(1e-6)
        z = torch.zeros_like(u, dtype=torch.int32)
        if bool(self.signed):
            # -u + j 2u/n = (u/n)(2j - n): stored weights keep exactly these values
            return Grid(u / n, z, -n, n) if self.is_weight else None
        return Grid(u / n, z, 0, n)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, alpha in (0, {ALPHA_MAX}), soft_forward={self.soft_forward}"


@dataclass(frozen=True)
class DSQConfig(QATConfig):
    """DSQ (Gong et al. 2019); see the module docstring.

    Example:
        >>> from edgeslim.core.methods import apply
        >>> m = nn.Sequential(nn.Linear(4, 3))
        >>> q, _ = apply(m, DSQConfig(w_bits=2, a_bits=None))
        >>> round(float(q[0].weight_q.alpha), 2)
        0.2
    """

    soft_forward: bool = False

    def weight_quantizer(self, layer: nn.Module) -> Quantizer:
        return DSQQuantizer(self.w_bits, layer.weight.shape[0], self.soft_forward)

    def activation_quantizer(self) -> Quantizer | None:
        if self.a_bits is None:
            return None
        return DSQQuantizer(self.a_bits, soft_forward=self.soft_forward)


@register_method(DSQConfig, "qat_dsq")
class DSQ(QATMethod):
    """DSQ QAT through :func:`edgeslim.core.methods.apply_`."""
