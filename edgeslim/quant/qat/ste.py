"""STE fake-quant QAT: PTQ-calibrated ranges, weights trained through straight-through rounding.

Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018 (arXiv:1712.05877), Section 3.1:

* forward: ``q(x) = S (clamp(round(x / S) + Z, qmin, qmax) - Z)``, the value the
  integer kernel computes; weights per output channel, symmetric (``Z = 0``,
  narrow range as :func:`edgeslim.quant.config.weight_spec`), their range the
  min/max of the current weights; activations per tensor, asymmetric
  (``[0, 2^b - 1]`` with a zero point, as :func:`~edgeslim.quant.config.activation_spec`),
  their range an exponential moving average of the batch min/max (smoothing 0.01)
  started from the PTQ calibration range;
* backward: the straight-through estimator (Bengio et al. 2013, arXiv:1308.3432),
  ``dq/dx = 1`` where ``x`` falls inside the range, ``0`` where it is clamped;
  the ranges receive no gradient.

From ``freeze_observer_epoch`` on, the ranges stop moving.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgeslim.core.methods import register_method
from edgeslim.quant.primitives import choose_qparams, fake_quantize_ste
from edgeslim.quant.qat.common import Grid, QATConfig, Quantizer, signed_range, unsigned_range
from edgeslim.quant.qat.handler import QATMethod

EMA = 0.01  # weight of a new batch's range in the moving average (torch's averaging_constant)


class STEQuantizer(Quantizer):
    """Min-max (weights) or moving-average (activations) range, straight-through rounding."""

    def __init__(self, bits: int, channels: int | None = None) -> None:
        super().__init__(bits, signed=channels is not None)
        self.is_weight = channels is not None
        self.per_channel = self.is_weight
        n = channels or 1
        self.register_buffer("lo", torch.zeros(n))
        self.register_buffer("hi", torch.zeros(n))
        self.register_buffer("scale", torch.ones(n))
        self.register_buffer("zero_point", torch.zeros(n, dtype=torch.int32))
        self.register_buffer("observer_frozen", torch.tensor(False))

    def qrange(self) -> tuple[int, int]:
        return signed_range(self.bits, narrow=True) if self.is_weight else unsigned_range(self.bits)

    def init_from(self, lo: Tensor, hi: Tensor, mean_abs: float) -> None:
        self.lo.copy_(lo.reshape(self.lo.shape))
        self.hi.copy_(hi.reshape(self.hi.shape))
        self._qparams()

    def _qparams(self) -> None:
        qmin, qmax = self.qrange()
        s, z = choose_qparams(self.lo, self.hi, qmin, qmax, symmetric=self.is_weight)
        self.scale.copy_(s)
        self.zero_point.copy_(z)

    def freeze_observer_(self) -> None:
        self.observer_frozen.fill_(True)

    def _follow(self, x: Tensor) -> None:
        """Move the range towards ``x`` (weights: exactly; activations: moving average)."""
        with torch.no_grad():
            d = x.detach()
            flat = d.reshape(d.shape[0], -1) if self.is_weight else d.reshape(1, -1)
            lo, hi = flat.amin(1), flat.amax(1)
            if self.is_weight:
                self.lo.copy_(lo)
                self.hi.copy_(hi)
            else:
                self.lo.lerp_(lo, EMA)
                self.hi.lerp_(hi, EMA)
            self._qparams()

    def quantize(self, x: Tensor) -> Tensor:
        if self.training and not bool(self.observer_frozen):
            self._follow(x)
        qmin, qmax = self.qrange()
        axis = 0 if self.is_weight else None
        scale = self.scale if self.is_weight else self.scale.reshape(())
        zero = self.zero_point if self.is_weight else self.zero_point.reshape(())
        return fake_quantize_ste(x, scale, zero, qmin, qmax, axis)

    def grid(self, x: Tensor | None = None) -> Grid:
        qmin, qmax = self.qrange()
        return Grid(self.scale, self.zero_point, qmin, qmax)


@dataclass(frozen=True)
class STEConfig(QATConfig):
    """STE fake-quant QAT (Jacob et al. 2018); see the module docstring.

    Example:
        >>> from edgeslim.core.methods import apply
        >>> m = nn.Sequential(nn.Linear(4, 3))
        >>> q, rec = apply(m, STEConfig(w_bits=4, a_bits=8), calib=[torch.randn(8, 4)])
        >>> type(q[0]).__name__, rec.method
        ('QATLinear', 'qat_ste')
    """

    def weight_quantizer(self, layer: nn.Module) -> Quantizer:
        return STEQuantizer(self.w_bits, channels=layer.weight.shape[0])

    def activation_quantizer(self) -> Quantizer | None:
        return STEQuantizer(self.a_bits) if self.a_bits is not None else None


@register_method(STEConfig, "qat_ste")
class STE(QATMethod):
    """STE fake-quant QAT through :func:`edgeslim.core.methods.apply_`."""
