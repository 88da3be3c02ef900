"""LSQ+: a learned offset for asymmetric activations, and better initialisation.

Bhalgat et al., "LSQ+: Improving low-bit quantization through learnable offsets
and better initialization", CVPR Workshops 2020 (arXiv:2004.09576):

* activations (eq. 3-4): ``x_hat = round(clamp((x - beta) / s, 0, 2^b - 1)) * s + beta``
  with a learned scale ``s`` *and* a learned offset ``beta``, so that activations
  with a negative tail (Swish, leaky ReLU, the network's input) keep every code;
* backward (eq. 5-6): straight-through for ``x`` inside the range;
  ``d x_hat / d s = round((x-beta)/s) - (x-beta)/s`` inside and the clamp bound
  outside; ``d x_hat / d beta = 0`` inside and ``1`` outside; both gradients
  scaled by LSQ's ``g = 1 / sqrt(N * Qp)``;
* initialisation: activations from the calibrated range, ``s = (max - min) / (2^b - 1)``,
  ``beta = min`` (the paper's min-max variant); weights symmetric LSQ with
  ``s = max(|mu - 3 sigma|, |mu + 3 sigma|) / 2^(b-1)`` (Section 3.2).

An integer runtime needs ``-beta / s`` to be a whole code (the zero point):
training leaves ``beta`` continuous, so export first rounds it
(:func:`edgeslim.quant.qat.export.harden_`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgeslim.core.methods import register_method
from edgeslim.quant.qat.common import (
    Grid,
    QATConfig,
    Quantizer,
    grad_scale,
    lsq_grad_scale,
    round_ste,
    unsigned_range,
)
from edgeslim.quant.qat.handler import QATMethod
from edgeslim.quant.qat.lsq import LSQQuantizer


class LSQPlusWeightQuantizer(LSQQuantizer):
    """Symmetric LSQ on weights, step size initialised from ``mu +- 3 sigma``."""

    def __init__(self, bits: int, channels: int | None = None) -> None:
        super().__init__(bits, channels, is_weight=True)

    def calibrate_on(self, x: Tensor) -> None:
        with torch.no_grad():
            v = x.detach().reshape(x.shape[0], -1) if self.per_channel else x.reshape(1, -1)
            mu, sigma = v.mean(1), v.std(1, unbiased=False)
            bound = torch.maximum((mu - 3 * sigma).abs(), (mu + 3 * sigma).abs())
            self.step.copy_((bound / 2 ** (self.bits - 1)).clamp_min(1e-8))
            self.signed = True
            self.initialized = True


class LSQPlusActQuantizer(Quantizer):
    """Asymmetric activations: learned scale ``s`` and offset ``beta``."""

    affine = False  # beta / s is not a whole code until hardened

    def __init__(self, bits: int) -> None:
        super().__init__(bits, signed=False)
        self.step = nn.Parameter(torch.ones(1))
        self.offset = nn.Parameter(torch.zeros(1))

    def qrange(self) -> tuple[int, int]:
        return unsigned_range(self.bits)

    def init_from(self, lo: Tensor, hi: Tensor, mean_abs: float) -> None:
        qmin, qmax = self.qrange()
        self.step.fill_(max(float(hi.max() - lo.min()) / (qmax - qmin), 1e-8))
        self.offset.fill_(float(lo.min()))

    def quantize(self, x: Tensor) -> Tensor:
        qmin, qmax = self.qrange()
        s = self.step.abs().clamp_min(1e-8).reshape(())
        beta = self.offset.reshape(())
        if self.training:
            g = lsq_grad_scale(x.numel() // x.shape[0], qmax)
            s, beta = grad_scale(s, g), grad_scale(beta, g)
        return round_ste(torch.clamp((x - beta) / s, qmin, qmax)) * s + beta

    def grid(self, x: Tensor | None = None) -> Grid:
        """The nearest grid with a whole zero point: ``Z = round(-beta / s)`` in the range."""
        qmin, qmax = self.qrange()
        s = self.step.detach().abs().clamp_min(1e-8)
        z = torch.clamp(torch.round(-self.offset.detach() / s), qmin, qmax)
        return Grid(s, z.to(torch.int32), qmin, qmax)


@dataclass(frozen=True)
class LSQPlusConfig(QATConfig):
    """LSQ+ (Bhalgat et al. 2020); see the module docstring.

    Example:
        >>> from edgeslim.core.methods import apply
        >>> m = nn.Sequential(nn.Linear(4, 3))
        >>> q, _ = apply(m, LSQPlusConfig(a_bits=4), calib=[torch.randn(8, 4)])
        >>> float(q[0].input_q.offset) < 0  # the input has a negative tail
        True
    """

    per_channel_weights: bool = False

    def weight_quantizer(self, layer: nn.Module) -> Quantizer:
        ch = layer.weight.shape[0] if self.per_channel_weights else None
        return LSQPlusWeightQuantizer(self.w_bits, ch)

    def activation_quantizer(self) -> Quantizer | None:
        return LSQPlusActQuantizer(self.a_bits) if self.a_bits is not None else None


@register_method(LSQPlusConfig, "qat_lsq_plus")
class LSQPlus(QATMethod):
    """LSQ+ QAT through :func:`edgeslim.core.methods.apply_`."""
