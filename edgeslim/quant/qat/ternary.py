"""Ternary weight networks (TWN): ``{-alpha, 0, +alpha}`` with threshold ``0.7 mean|W|``.

Li, Zhang and Liu, "Ternary Weight Networks", arXiv:1605.04711 (2016), Section 2:

* forward (eq. 4-6): ``Delta = 0.7 mean|W|``; ``W_t = alpha sign(W) 1_{|W| > Delta}``
  with ``alpha = mean |W_i|`` over the ``|W_i| > Delta`` (the approximate optimum
  of ``min ||W - alpha T||^2``); one threshold and one alpha per output channel;
* backward (Section 2.3): the gradient of the ternary weights is applied to the
  float weights (straight-through, ``dW_t/dW = 1``).

Activations stay in float unless ``a_bits`` is set (then STE fake-quant). Storage
is 2 bits a weight plus one scale a channel: size only on CPU runtimes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgeslim.core.methods import register_method
from edgeslim.quant.qat.common import Grid, QATConfig, Quantizer
from edgeslim.quant.qat.handler import QATMethod
from edgeslim.quant.qat.ste import STEQuantizer

THRESHOLD = 0.7  # TWN eq. 6: Delta = 0.7 E|W|, for weights roughly uniform or normal


def ternarize(w: Tensor, threshold: float = THRESHOLD) -> tuple[Tensor, Tensor]:
    """Per-channel ``alpha`` and the codes ``T`` in ``{-1, 0, 1}`` (shaped like ``w``)."""
    flat = w.detach().reshape(w.shape[0], -1)
    delta = threshold * flat.abs().mean(1, keepdim=True)
    mask = flat.abs() > delta
    alpha = (flat.abs() * mask).sum(1) / mask.sum(1).clamp_min(1)
    t = torch.sign(flat) * mask
    return alpha, t.reshape(w.shape)


class TernaryQuantizer(Quantizer):
    """``alpha T`` per output channel, straight-through to the float weights; no state."""

    affine = False

    def __init__(self, threshold: float = THRESHOLD) -> None:
        super().__init__(2, signed=True)
        self.threshold = threshold

    def init_from(self, lo: Tensor, hi: Tensor, mean_abs: float) -> None:
        pass

    def quantize(self, x: Tensor) -> Tensor:
        alpha, t = ternarize(x, self.threshold)
        wt = alpha.reshape([-1] + [1] * (x.dim() - 1)) * t
        return x + (wt - x).detach()

    def grid(self, x: Tensor | None = None) -> Grid:
        if x is None:
            raise ValueError("a ternary weight's grid depends on the weight")
        alpha = ternarize(x, self.threshold)[0].clamp_min(1e-12)
        return Grid(alpha, torch.zeros_like(alpha, dtype=torch.int32), -1, 1)

    def extra_repr(self) -> str:
        return f"ternary, threshold {self.threshold} mean|W|"


@dataclass(frozen=True)
class TernaryConfig(QATConfig):
    """Ternary weights (TWN); see the module docstring.

    Example:
        >>> from edgeslim.core.methods import apply
        >>> m = nn.Sequential(nn.Linear(16, 3))
        >>> q, _ = apply(m, TernaryConfig())
        >>> len(q[0].weight_q(q[0].weight)[0].unique()) <= 3
        True
    """

    a_bits: int | None = None
    threshold: float = THRESHOLD

    def weight_quantizer(self, layer: nn.Module) -> Quantizer:
        return TernaryQuantizer(self.threshold)

    def activation_quantizer(self) -> Quantizer | None:
        return STEQuantizer(self.a_bits) if self.a_bits is not None else None


@register_method(TernaryConfig, "qat_ternary")
class Ternary(QATMethod):
    """Ternary-weight QAT through :func:`edgeslim.core.methods.apply_`."""
