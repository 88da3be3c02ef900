"""PACT: parameterized clipping activation with a learned clipping level alpha.

Choi et al., "PACT: Parameterized Clipping Activation for Quantized Neural
Networks", arXiv:1805.06085 (2018):

* forward (eq. 1-2): ``y = clip(x, 0, alpha)``,
  ``y_q = round(y * (2^b - 1) / alpha) * alpha / (2^b - 1)``;
* backward (eq. 3, straight-through for the rounding):
  ``d y_q / d x = 1`` for ``0 <= x <= alpha``, else ``0``;
  ``d y_q / d alpha = 1`` for ``x >= alpha``, else ``0``, so alpha's gradient is
  the summed upstream gradient of the clipped values (the paper's L2 penalty on
  alpha is the optimizer's weight decay);
* alpha starts at the calibrated maximum (the paper starts at 10).

Inputs that calibration saw go negative (the network's input) are clipped to
``[-alpha, alpha]`` on a signed grid, alpha's gradient then being the clipped
values' above minus below. Weights are quantized as :mod:`~edgeslim.quant.qat.ste`
does (per channel, symmetric), so that a PACT model stays on the integer grid
(the paper pairs PACT with DoReFa weights: :mod:`~edgeslim.quant.qat.dorefa`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgeslim.core.methods import register_method
from edgeslim.quant.qat.common import Grid, QATConfig, Quantizer, signed_range, unsigned_range
from edgeslim.quant.qat.handler import QATMethod
from edgeslim.quant.qat.ste import STEQuantizer


class _PACTFunction(torch.autograd.Function):
    """``y_q`` with the paper's gradients (eq. 3), for unsigned or signed clipping."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor, levels: int, signed: bool) -> Tensor:
        lo = -alpha if signed else torch.zeros_like(alpha)
        y = torch.minimum(torch.maximum(x, lo), alpha)
        ctx.save_for_backward(x, alpha)
        ctx.signed = signed
        return torch.round(y * levels / alpha) * alpha / levels

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, alpha = ctx.saved_tensors
        lo = -alpha if ctx.signed else torch.zeros_like(alpha)
        above, below = x >= alpha, x <= lo
        gx = grad * (~above & ~below) if ctx.signed else grad * ((x >= 0) & ~above)
        ga = (grad * above).sum()
        if ctx.signed:
            ga = ga - (grad * below).sum()
        return gx, ga.reshape(alpha.shape), None, None


class PACTQuantizer(Quantizer):
    """A learned clipping level ``alpha`` (a parameter) for a layer's input."""

    def __init__(self, bits: int) -> None:
        super().__init__(bits)
        self.alpha = nn.Parameter(torch.ones(1))

    def qrange(self) -> tuple[int, int]:
        return (
            signed_range(self.bits, narrow=True) if bool(self.signed) else unsigned_range(self.bits)
        )

    def init_from(self, lo: Tensor, hi: Tensor, mean_abs: float) -> None:
        self.alpha.fill_(max(float(torch.maximum(hi.max(), -lo.min())), 1e-6))

    def quantize(self, x: Tensor) -> Tensor:
        alpha = self.alpha.abs().clamp_min(1e-6).reshape(())
        levels = self.qrange()[1]
        if self.training:
            return _PACTFunction.apply(x, alpha, levels, self.signed)
        # the same values with plain ops, which an exporter can trace
        y = torch.minimum(
            torch.maximum(x, -alpha if self.signed else torch.zeros_like(alpha)), alpha
        )
        return torch.round(y * levels / alpha) * alpha / levels

    def grid(self, x: Tensor | None = None) -> Grid:
        qmin, qmax = self.qrange()
        s = self.alpha.detach().abs().clamp_min(1e-6) / qmax
        return Grid(s, torch.zeros(1, dtype=torch.int32), qmin, qmax)


@dataclass(frozen=True)
class PACTConfig(QATConfig):
    """PACT (Choi et al. 2018); see the module docstring.

    Example:
        >>> from edgeslim.core.methods import apply
        >>> m = nn.Sequential(nn.ReLU(), nn.Linear(4, 3))
        >>> q, _ = apply(m, PACTConfig(a_bits=4), calib=[torch.randn(8, 4)])
        >>> bool(q[1].input_q.alpha > 0), bool(q[1].input_q.signed)
        (True, False)
    """

    def weight_quantizer(self, layer: nn.Module) -> Quantizer:
        return STEQuantizer(self.w_bits, channels=layer.weight.shape[0])

    def activation_quantizer(self) -> Quantizer | None:
        return PACTQuantizer(self.a_bits) if self.a_bits is not None else None


@register_method(PACTConfig, "qat_pact")
class PACT(QATMethod):
    """PACT QAT through :func:`edgeslim.core.methods.apply_`."""
