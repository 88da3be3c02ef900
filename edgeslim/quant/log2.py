"""Power-of-two (logarithmic) weight quantization: multiplications become shifts.

Gudovskiy & Rigazio, "ShiftCNN: Generalized Low-Precision Architecture for
Inference of Convolutional Neural Networks" (arXiv:1706.02393) and Elhoushi et
al., "DeepShift: Towards Multiplication-Less Neural Networks", CVPRW 2021
(arXiv:1905.13298): each weight becomes ``sign * 2^e``, the nearest power of two
in the linear domain, clamped to the ``2^(bits-1) - 1`` exponents below the
channel's largest, plus an exact zero. One code = 1 sign bit + ``bits - 1``
exponent bits; each output channel stores its top exponent (one byte).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.quant.storage import StorageReport, account, coded_layers


def pow2_quantize(w: Tensor, bits: int = 4) -> Tensor:
    """``sign(w) * 2^round(log2|w|)`` per output channel, ``2^(bits-1) - 1`` exponents + zero.

    Example:
        >>> pow2_quantize(torch.tensor([[0.5, -0.3, 0.01, 0.0]]), bits=3).tolist()
        [[0.5, -0.25, 0.0, 0.0]]
    """
    if not 2 <= bits <= 8:
        raise EdgeslimError(f"power-of-two bits must be in 2..8, got {bits}")
    flat = w.reshape(w.shape[0], -1)
    amax = flat.abs().amax(1, keepdim=True).clamp(min=1e-30)
    e_max = torch.round(torch.log2(amax))
    e_min = e_max - (2 ** (bits - 1) - 2)  # one code is reserved for zero
    # nearest power of two in the *linear* domain (ShiftCNN): 2^(e+1) above 1.5 * 2^e,
    # which has lower error than rounding log2 |w| (DeepShift's rounding)
    mag = flat.abs().clamp(min=1e-30)
    e = torch.floor(torch.log2(mag))
    e = torch.where(mag > 1.5 * torch.exp2(e), e + 1, e)
    zero = mag < torch.exp2(e_min) / 2  # nearer to 0 than to the smallest level
    q = torch.sign(flat) * torch.exp2(torch.clamp(e, e_min, e_max))
    q = torch.where(zero | (flat == 0), torch.zeros_like(q), q)
    return q.reshape(w.shape)


def pow2_quantize_model(
    model: nn.Module, bits: int = 4, exclude: tuple[str, ...] = ()
) -> tuple[nn.Module, StorageReport]:
    """A copy of ``model`` with conv/linear weights as powers of two, and its storage size.

    Example:
        >>> m, rep = pow2_quantize_model(nn.Sequential(nn.Linear(64, 64)), bits=4)
        >>> rep.ratio > 6
        True
    """
    out = copy.deepcopy(model)
    coded = {}
    for name, mod in coded_layers(out, exclude):
        with torch.no_grad():
            mod.weight.copy_(pow2_quantize(mod.weight, bits))
        coded[f"{name}.weight" if name else "weight"] = (bits, mod.weight.shape[0])
    return out, account(out, coded)
