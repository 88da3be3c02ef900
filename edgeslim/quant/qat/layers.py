"""QAT twins of ``nn.Conv2d`` / ``nn.Linear``: quantized input, quantized (BN-folded) weight.

BatchNorm folding in simulation follows Jacob et al. 2018 (arXiv:1712.05877,
Section 3.2 and Figure C.8) and Krishnamoorthi 2018 (arXiv:1806.08342,
Section 3.3): the conv owns its BN, the weight quantizer sees the folded weight
``W * gamma / sigma`` and the bias is ``beta + (b - mu) * gamma / sigma``, so
training sees exactly the quantization the folded deployed layer will have.
Until :attr:`bn_frozen`, ``mu`` and ``sigma`` are the batch's (measured by one
extra float convolution, which gradients flow through as they flow through a
BN layer's statistics) and the running statistics follow them; afterwards the
running statistics are used and stay fixed. In eval mode the running statistics are always used.

The float parameters keep the names of the float layer (``weight``, ``bias``),
the BN lives at ``.bn``, the quantizers at ``.weight_q`` / ``.input_q``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeslim.quant.qat.common import Quantizer


class _QATLayer:
    """Mixin: a layer whose input and (BN-folded) weight pass through quantizers."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    bn: nn.BatchNorm2d | None
    weight_q: Quantizer | None
    input_q: Quantizer | None

    def _init_qat(
        self, bn: nn.Module | None, weight_q: Quantizer | None, input_q: Quantizer | None
    ) -> None:
        self.bn = bn
        self.weight_q = weight_q
        self.input_q = input_q
        self.bn_frozen = False

    def freeze_bn_(self, frozen: bool = True) -> None:
        self.bn_frozen = frozen

    def _float_out(self, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        raise NotImplementedError

    def _channel_stats(self, y: Tensor) -> tuple[Tensor, Tensor]:
        dims = [d for d in range(y.dim()) if d != 1]
        return y.mean(dims), y.var(dims, unbiased=False)

    def folded(self, x: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The float weight and bias with BN folded in (batch statistics while training)."""
        w, b, bn = self.weight, self.bias, self.bn
        if bn is None:
            return w, b
        b0 = b if b is not None else torch.zeros_like(bn.running_mean)
        if x is not None and self.training and not self.bn_frozen:
            # gradients flow through the batch statistics, as through a BN layer's
            y = self._float_out(x, w, b0)
            mean, var = self._channel_stats(y)
            with torch.no_grad():
                n = y.numel() // y.shape[1]
                m = bn.momentum if bn.momentum is not None else 0.1
                bn.running_mean.mul_(1 - m).add_(mean, alpha=m)
                bn.running_var.mul_(1 - m).add_(var * n / max(n - 1, 1), alpha=m)
                bn.num_batches_tracked += 1
        else:
            mean, var = bn.running_mean, bn.running_var
        gamma = bn.weight if bn.affine else torch.ones_like(mean)
        beta = bn.bias if bn.affine else torch.zeros_like(mean)
        k = gamma / torch.sqrt(var + bn.eps)
        wf = w * k.reshape([-1] + [1] * (w.dim() - 1))
        return wf, beta + (b0 - mean) * k

    def qat_weight_bias(self, x: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        w, b = self.folded(x)
        return (self.weight_q(w) if self.weight_q is not None else w), b

    def forward(self, x: Tensor) -> Tensor:
        xq = self.input_q(x) if self.input_q is not None else x
        w, b = self.qat_weight_bias(xq)
        return self._float_out(xq, w, b)


class QATConv2d(_QATLayer, nn.Conv2d):
    """``nn.Conv2d`` trained through quantizers (and its folded BN)."""

    @classmethod
    def from_float(
        cls,
        conv: nn.Conv2d,
        bn: nn.Module | None = None,
        weight_q: Quantizer | None = None,
        input_q: Quantizer | None = None,
    ) -> QATConv2d:
        q = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            conv.bias is not None,
            conv.padding_mode,
        )
        q.weight, q.bias = conv.weight, conv.bias
        q._init_qat(bn, weight_q, input_q)
        return q

    def _float_out(self, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        return self._conv_forward(x, w, b)

    def forward(self, x: Tensor) -> Tensor:  # nn.Conv2d's forward would win the MRO
        return _QATLayer.forward(self, x)


class QATLinear(_QATLayer, nn.Linear):
    """``nn.Linear`` trained through quantizers."""

    @classmethod
    def from_float(
        cls,
        lin: nn.Linear,
        bn: nn.Module | None = None,
        weight_q: Quantizer | None = None,
        input_q: Quantizer | None = None,
    ) -> QATLinear:
        q = cls(lin.in_features, lin.out_features, lin.bias is not None)
        q.weight, q.bias = lin.weight, lin.bias
        q._init_qat(bn, weight_q, input_q)
        return q

    def _float_out(self, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        return F.linear(x, w, b)

    def forward(self, x: Tensor) -> Tensor:
        return _QATLayer.forward(self, x)


QAT_TWINS: dict[type[nn.Module], type[nn.Module]] = {nn.Conv2d: QATConv2d, nn.Linear: QATLinear}


def qat_layers(model: nn.Module):
    """``(name, layer)`` for every QAT twin in ``model``."""
    for name, m in model.named_modules():
        if isinstance(m, _QATLayer):
            yield name, m
