"""LSQ: learned step size quantization.

Esser et al., "Learned Step Size Quantization", ICLR 2020 (arXiv:1902.08153):

* forward (eq. 1-2): ``v_bar = round(clip(v / s, -Qn, Qp))``, ``v_hat = v_bar * s``,
  with ``Qn = 2^(b-1), Qp = 2^(b-1) - 1`` for signed data (weights; activations
  that calibration saw go negative) and ``Qn = 0, Qp = 2^b - 1`` for unsigned
  activations;
* backward (eq. 3): ``d v_hat / d v = 1`` inside the range and ``0`` outside
  (straight-through), and ``d v_hat / d s = -v/s + round(v/s)`` inside,
  ``-Qn`` below, ``Qp`` above;
* gradient scale (Section 2.2): the step size's gradient is multiplied by
  ``g = 1 / sqrt(N * Qp)``, ``N`` the number of weights of the layer (weights)
  or of features of one sample (activations);
* initialisation: ``init="paper"`` is the paper's ``s = 2 <|v|> / sqrt(Qp)`` on the
  weights and on the first calibration batches; ``init="mse"`` (the config's default)
  takes the step whose grid has the least squared error on the same data (the MSE
  calibrator's search, :class:`edgeslim.quant.observers.mse.MSEObserver`), as LSQ+
  (Bhalgat et al. 2020, Section 3.3) initialises its scales. On ResNet-20 / signs at
  W4A4 the paper's rule starts at 77% against 92.9% FP32 and ends 32 QAT steps at
  90.3%; the MSE steps start at 90.9% and end at 92.6% (``benchmarks/qat.py``).

One step size per tensor, as in the paper (``per_channel_weights`` gives one per
output channel, which helps depthwise layers at 4 bits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import register_method
from edgeslim.quant.observers.mse import MSEObserver
from edgeslim.quant.primitives import choose_qparams
from edgeslim.quant.qat.common import (
    Grid,
    QATConfig,
    Quantizer,
    bshape,
    grad_scale,
    lsq_grad_scale,
    round_ste,
)
from edgeslim.quant.qat.handler import QATMethod

Init = Literal["paper", "mse"]
INITS = get_args(Init)


class LSQQuantizer(Quantizer):
    """A learned step size ``s`` (a parameter), the paper's gradient scale."""

    def __init__(
        self,
        bits: int,
        channels: int | None = None,
        is_weight: bool = False,
        init: Init = "paper",
    ) -> None:
        super().__init__(bits, signed=is_weight)
        self.is_weight = is_weight
        self.per_channel = channels is not None
        self.init = init
        self.step = nn.Parameter(torch.ones(channels or 1))
        self._mse: list[MSEObserver] = []  # a list: calibration state, not a submodule

    def observe(self, x: Tensor) -> None:
        super().observe(x)
        if self.init == "mse":
            if not self._mse:
                self._mse.append(MSEObserver(ch_axis=0 if self.per_channel else None))
            self._mse[0](x.detach())

    def forget_(self) -> None:
        super().forget_()
        self._mse.clear()

    def init_from(self, lo: Tensor, hi: Tensor, mean_abs: float) -> None:
        if self.is_weight:
            self.signed = True
        qmin, qmax = self.qrange()
        if self._mse:  # the least-squared-error grid of the same family (Z = 0)
            obs = self._mse.pop()
            lo_c, hi_c = obs.range(qmin, qmax, True)
            scale, _ = choose_qparams(lo_c, hi_c, qmin, qmax, symmetric=True)
            self.step.copy_(scale.reshape(-1).expand_as(self.step).clamp_min(1e-8))
            return
        self.step.fill_(max(2 * mean_abs / math.sqrt(qmax), 1e-8))

    def n_sharing(self, x: Tensor) -> int:
        """``N`` of the gradient scale: the values that share one step size."""
        if self.is_weight:
            return x.numel() // x.shape[0] if self.per_channel else x.numel()
        return x.numel() // x.shape[0]  # activations: the features of one sample

    def step_size(self, x: Tensor) -> Tensor:
        """``s`` shaped for ``x``, its gradient scaled by ``g`` while training."""
        s = self.step.abs().clamp_min(1e-8)
        if self.training:
            s = grad_scale(s, lsq_grad_scale(self.n_sharing(x), self.qrange()[1]))
        return bshape(s, x)

    def quantize(self, x: Tensor) -> Tensor:
        qmin, qmax = self.qrange()
        s = self.step_size(x)
        return round_ste(torch.clamp(x / s, qmin, qmax)) * s

    def grid(self, x: Tensor | None = None) -> Grid:
        qmin, qmax = self.qrange()
        s = self.step.detach().abs().clamp_min(1e-8)
        return Grid(s, torch.zeros_like(s, dtype=torch.int32), qmin, qmax)


def lsq_weight_quantizer(
    bits: int, layer: nn.Module, per_channel: bool = False, init: Init = "paper"
) -> LSQQuantizer:
    channels = layer.weight.shape[0] if per_channel else None
    return LSQQuantizer(bits, channels, is_weight=True, init=init)


@dataclass(frozen=True)
class LSQConfig(QATConfig):
    """LSQ (Esser et al. 2020); see the module docstring.

    Example:
        >>> from edgeslim.core.methods import apply
        >>> m = nn.Sequential(nn.Linear(4, 3))
        >>> q, rec = apply(m, LSQConfig(w_bits=4, a_bits=4), calib=[torch.randn(8, 4)])
        >>> q[0].weight_q.step.requires_grad, rec.method
        (True, 'qat_lsq')
    """

    per_channel_weights: bool = False
    init: Init = "mse"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init not in INITS:
            raise EdgeslimError(f"LSQ init must be one of {INITS}, got {self.init!r}")

    def weight_quantizer(self, layer: nn.Module) -> Quantizer:
        return lsq_weight_quantizer(self.w_bits, layer, self.per_channel_weights, self.init)

    def activation_quantizer(self) -> Quantizer | None:
        if self.a_bits is None:
            return None
        return LSQQuantizer(self.a_bits, init=self.init)


@register_method(LSQConfig, "qat_lsq")
class LSQ(QATMethod):
    """LSQ QAT through :func:`edgeslim.core.methods.apply_`."""
