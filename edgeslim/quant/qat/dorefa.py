"""DoReFa: tanh-normalised weights and clipped activations.

Zhou et al., "DoReFa-Net: Training Low Bitwidth Convolutional Neural Networks
with Low Bitwidth Gradients", arXiv:1606.06160 (2016), Section 2.3 and 2.4, with
``quantize_k(r) = round((2^k - 1) r) / (2^k - 1)`` and a straight-through
gradient for the rounding (eq. 5):

* weights (eq. 9): ``w_q = 2 quantize_k(tanh(w) / (2 max|tanh(w)|) + 1/2) - 1``; the
  gradient flows through ``tanh`` and the max like any other op. The outputs are
  the odd multiples ``(2i - n) / n`` of ``1 / n`` (``n = 2^k - 1``): the tanh map is
  no affine quantization of ``w``, so export needs :func:`~edgeslim.quant.qat.export.harden_`;
* activations (eq. 10): ``quantize_k(clip(r, 0, 1))``, the clip taken at a fixed
  level ``c`` from calibration (``c quantize_k(clip(x / c, 0, 1))``) because our
  layers' inputs are not bounded by 1; inputs that calibration saw go negative
  use the symmetric ``clip(x / c, -1, 1)`` on ``2^(k-1) - 1`` levels each side.

Keep BatchNorm as a layer (``fold_bn=False``, the default here): the tanh
normalisation would discard the per-channel scale a folded BN puts in the weight.
Since the normalised weights are on another scale than the float ones, the
BatchNorm statistics are re-estimated on the calibration batches before the
activation clip levels are observed (:func:`~edgeslim.quant.qat.handler.calibrate_qat_`):
with the float model's statistics the activations grow layer after layer, the
clip levels calibrated on them are orders of magnitude too wide, every activation
rounds to zero and the network stays at chance.
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
    round_ste,
    signed_range,
    unsigned_range,
)
from edgeslim.quant.qat.handler import QATMethod


def quantize_k(r: Tensor, levels: int) -> Tensor:
    """``round(levels * r) / levels`` with a straight-through gradient (DoReFa eq. 5)."""
    return round_ste(r * levels) / levels


class DoReFaWeightQuantizer(Quantizer):
    """``2 quantize_k(tanh(w) / (2 max|tanh(w)|) + 1/2) - 1``; no state."""

    affine = False
    rescales = True  # weights in [-1, 1], whatever their float scale

    def __init__(self, bits: int) -> None:
        super().__init__(bits, signed=True)

    def init_from(self, lo: Tensor, hi: Tensor, mean_abs: float) -> None:
        pass  # nothing to learn or calibrate

    def quantize(self, x: Tensor) -> Tensor:
        t = torch.tanh(x)
        r = t / (2 * t.abs().max().clamp_min(1e-12)) + 0.5
        return 2 * quantize_k(r, 2**self.bits - 1) - 1

    def grid(self, x: Tensor | None = None) -> Grid:
        n = 2**self.bits - 1
        return Grid(torch.tensor([1.0 / n]), torch.zeros(1, dtype=torch.int32), -n, n)


class DoReFaActQuantizer(Quantizer):
    """``c quantize_k(clip(x / c, 0, 1))`` with ``c`` fixed by calibration."""

    def __init__(self, bits: int) -> None:
        super().__init__(bits)
        self.register_buffer("clip", torch.ones(1))

    def qrange(self) -> tuple[int, int]:
        return (
            signed_range(self.bits, narrow=True) if bool(self.signed) else unsigned_range(self.bits)
        )

    def init_from(self, lo: Tensor, hi: Tensor, mean_abs: float) -> None:
        self.clip.fill_(max(float(torch.maximum(hi.max(), -lo.min())), 1e-6))

    def quantize(self, x: Tensor) -> Tensor:
        c = self.clip.reshape(())
        lo = -1.0 if bool(self.signed) else 0.0
        return c * quantize_k(torch.clamp(x / c, lo, 1.0), self.qrange()[1])

    def grid(self, x: Tensor | None = None) -> Grid:
        qmin, qmax = self.qrange()
        return Grid(self.clip / qmax, torch.zeros(1, dtype=torch.int32), qmin, qmax)


@dataclass(frozen=True)
class DoReFaConfig(QATConfig):
    """DoReFa (Zhou et al. 2016); see the module docstring.

    Example:
        >>> from edgeslim.core.methods import apply
        >>> m = nn.Sequential(nn.Linear(4, 3))
        >>> q, _ = apply(m, DoReFaConfig(w_bits=2, a_bits=None))
        >>> {round(3 * v) for v in q[0].weight_q(q[0].weight).flatten().tolist()} <= {-3, -1, 1, 3}
        True
    """

    fold_bn: bool = False

    def weight_quantizer(self, layer: nn.Module) -> Quantizer:
        return DoReFaWeightQuantizer(self.w_bits)

    def activation_quantizer(self) -> Quantizer | None:
        return DoReFaActQuantizer(self.a_bits) if self.a_bits is not None else None


@register_method(DoReFaConfig, "qat_dorefa")
class DoReFa(QATMethod):
    """DoReFa QAT through :func:`edgeslim.core.methods.apply_`."""
