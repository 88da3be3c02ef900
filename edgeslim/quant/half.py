"""FP16 and BF16 conversion: half the bytes, and on hardware with half-precision units
(AVX512-BF16, AMX, GPUs) faster kernels.

Micikevicius et al., "Mixed Precision Training", ICLR 2018 (FP16) and Kalamkar et
al., "A Study of BFLOAT16 for Deep Learning Training" (arXiv:1905.12322) (BF16: the
fp32 exponent range with an 8-bit mantissa, so no loss scaling or overflow).

Registered as ``apply_(model, HalfConfig("bf16"))``. The whole model changes dtype
(a layer left in fp32 would need casts around it), so per-layer overrides and
``filter_fn`` are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import Method, MethodConfig, apply, register_method

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


@dataclass(frozen=True)
class HalfConfig(MethodConfig):
    """Run the whole model in ``dtype`` ("fp16" or "bf16")."""

    dtype: str = "bf16"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise EdgeslimError(f"dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")


@register_method(HalfConfig, "half")
class Half(Method):
    """The result wraps the model as ``HalfPrecision.model`` (details: ``wrapped_as``)."""

    def apply_(self, model, config, layers, calib):
        if layers.overrides or layers.filter_fn is not None:
            raise EdgeslimError("half precision converts the whole model: no per-layer choice")
        out = self.restore_(model, config, layers, {})
        layers.done("", config)
        return out, {"dtype": config.dtype, "bytes": half_bytes(out), "wrapped_as": "model"}

    def restore_(self, model, config, layers, details):
        return HalfPrecision(model.to(DTYPES[config.dtype]), DTYPES[config.dtype])


def to_half(model: nn.Module, dtype: str = "bf16") -> HalfPrecision:
    """A half-precision copy of ``model`` (the caller's model is not modified).

    Same as ``apply(model, HalfConfig(dtype)).model``.

    Example:
        >>> m = to_half(nn.Linear(4, 2), "fp16")
        >>> m(torch.randn(3, 4)).dtype, m.model.weight.dtype
        (torch.float32, torch.float16)
    """
    return apply(model, HalfConfig(dtype)).model


def half_bytes(model: nn.Module) -> int:
    """Parameter and buffer bytes of a model at its current dtypes."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)
