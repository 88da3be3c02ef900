"""Binary weights: sign with a per-channel mean-magnitude scale (XNOR-Net's BWN).

Rastegari et al., "XNOR-Net: ImageNet Classification Using Binary Convolutional
Neural Networks", ECCV 2016 (arXiv:1603.05279), Section 3.1:

* forward (eq. 2-4): ``W_b = alpha sign(W)`` with ``alpha = mean |W|`` over each
  output channel (``sign(0) = +1``);
* backward (eq. 5 with BinaryConnect's / BNN's straight-through sign,
  Courbariaux et al. 2016, arXiv:1602.02830):
  ``dC/dW = dC/dW_b (1/n + alpha 1_{|W| <= 1})`` per channel; autograd of
  ``alpha(W) * ste_sign(W)`` gives exactly that (the ``1/n`` term through alpha).

Activations stay in float unless ``a_bits`` is set (then they are STE
fake-quantized, :mod:`~edgeslim.quant.qat.ste`). Storage is 1 bit a weight plus
one scale a channel; no CPU runtime we deploy to has a binary convolution, so
the gain is size only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgeslim.core.methods import register_method
from edgeslim.quant.qat.common import Grid, QATConfig, Quantizer
from edgeslim.quant.qat.handler import QATMethod
from edgeslim.quant.qat.ste import STEQuantizer


def ste_sign(w: Tensor) -> Tensor:
    """``sign(w)`` (``+1`` at 0) with the hard-tanh gradient ``1_{|w| <= 1}`` (BNN)."""
    clipped = torch.clamp(w, -1.0, 1.0)
    return clipped + (torch.where(w >= 0, 1.0, -1.0) - clipped).detach()


def channel_mean_abs(w: Tensor) -> Tensor:
    """``mean |W|`` of each output channel, shaped to broadcast over ``w``."""
    return w.abs().reshape(w.shape[0], -1).mean(1).reshape([-1] + [1] * (w.dim() - 1))


class BinaryQuantizer(Quantizer):
    """``alpha sign(W)``, alpha the per-channel mean magnitude; no state."""

    affine = False

    def __init__(self) -> None:
        super().__init__(1, signed=True)

    def init_from(self, lo: Tensor, hi: Tensor, mean_abs: float) -> None:
        pass

    def quantize(self, x: Tensor) -> Tensor:
        return channel_mean_abs(x) * ste_sign(x)

    def grid(self, x: Tensor | None = None) -> Grid:
        if x is None:
            raise ValueError("a binary weight's grid depends on the weight")
        alpha = channel_mean_abs(x.detach()).reshape(-1).clamp_min(1e-12)
        return Grid(alpha, torch.zeros_like(alpha, dtype=torch.int32), -1, 1)

    def extra_repr(self) -> str:
        return "binary, per-channel mean |W|"


@dataclass(frozen=True)
class BinaryConfig(QATConfig):
    """Binary weights (XNOR-Net BWN); see the module docstring.

    Example:
        >>> from edgeslim.core.methods import apply
        >>> m = nn.Sequential(nn.Linear(4, 3))
        >>> q, _ = apply(m, BinaryConfig())
        >>> q[0].weight_q(q[0].weight).abs().unique(dim=1).shape[1]
        1
    """

    a_bits: int | None = None

    def weight_quantizer(self, layer: nn.Module) -> Quantizer:
        return BinaryQuantizer()

    def activation_quantizer(self) -> Quantizer | None:
        return STEQuantizer(self.a_bits) if self.a_bits is not None else None


@register_method(BinaryConfig, "qat_binary")
class Binary(QATMethod):
    """Binary-weight QAT through :func:`edgeslim.core.methods.apply_`."""
