"""FP16 and BF16 conversion: half the bytes, and on hardware with half-precision units
(AVX512-BF16, AMX, GPUs) faster kernels.

Micikevicius et al., "Mixed Precision Training", ICLR 2018 (FP16) and Kalamkar et
al., "A Study of BFLOAT16 for Deep Learning Training" (arXiv:1905.12322) (BF16: the
fp32 exponent range with an 8-bit mantissa, so no loss scaling or overflow).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from edgeslim.core.errors import EdgeslimError

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class HalfPrecision(nn.Module):
    """Runs ``model`` in ``dtype``: casts float inputs in and the output back to fp32."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, x: Tensor) -> Tensor:
        if x.is_floating_point():
            x = x.to(self.dtype)
        return self.model(x).float()


def to_half(model: nn.Module, dtype: str = "bf16") -> HalfPrecision:
    """A half-precision copy of ``model`` (the caller's model is not modified).

    Example:
        >>> m = to_half(nn.Linear(4, 2), "fp16")
        >>> m(torch.randn(3, 4)).dtype, m.model.weight.dtype
        (torch.float32, torch.float16)
    """
    if dtype not in DTYPES:
        raise EdgeslimError(f"dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    return HalfPrecision(copy.deepcopy(model).to(DTYPES[dtype]), DTYPES[dtype])


def half_bytes(model: nn.Module) -> int:
    """Parameter and buffer bytes of a model at its current dtypes."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)
