"""Power-of-two weights as a registered method: ``apply_(model, PowerOfTwoConfig(bits=4))``.

The coding and its two corrections (a least-squares per-channel scale, bias
correction on calibration batches) are explained in :mod:`edgeslim.quant.log2`;
this file plugs them into :mod:`edgeslim.core.methods`. Only values change, so a
saved model reloads without replaying anything.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import Method, MethodConfig, apply, register_method
from edgeslim.quant.bias_correction import bias_correct_
from edgeslim.quant.log2 import pow2_fit, pow2_quantize
from edgeslim.quant.storage import StorageReport, account, codable


@dataclass(frozen=True)
class PowerOfTwoConfig(MethodConfig):
    """Each conv/linear weight becomes ``s * sign * 2^e`` with ``bits``-bit codes.

    Args:
        bits: code bits per weight (1 sign + ``bits - 1`` exponent bits).
        scale: fit a per-channel least-squares scale ``s``; ``False`` gives pure
            powers of two (``s = 1``).

    Example:
        >>> PowerOfTwoConfig(bits=5).bits
        5
    """

    bits: int = 4
    scale: bool = True

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 8:
            raise EdgeslimError(f"power-of-two bits must be in 2..8, got {self.bits}")


@register_method(PowerOfTwoConfig, "power_of_two")
class PowerOfTwo(Method):
    """``calib`` (input batches), when given, corrects each coded layer's bias."""

    def apply_(self, model, config, layers, calib):
        ref = copy.deepcopy(model) if calib is not None else None
        coded, names = {}, []
        for name, mod, cfg in layers.select(model, codable):
            with torch.no_grad():
                if cfg.scale:
                    q, s = pow2_fit(mod.weight, cfg.bits)
                    mod.weight.copy_(s * q)
                else:
                    mod.weight.copy_(pow2_quantize(mod.weight, cfg.bits))
            side = mod.weight.shape[0] * (5 if cfg.scale else 1)  # fp32 scale + exponent byte
            coded[f"{name}.weight" if name else "weight"] = (cfg.bits, side)
            names.append(name)
            layers.done(name, cfg)
        shifts = {}
        if ref is not None and names:
            shifts = bias_correct_(model, ref, calib, progress=False, names=names)
        return model, {"storage": account(model, coded).to_dict(), "bias_shifts": shifts}


def pow2_quantize_model(
    model: nn.Module,
    bits: int = 4,
    exclude: tuple[str, ...] = (),
    scale: bool = True,
    calib: Iterable[Tensor] | None = None,
) -> tuple[nn.Module, StorageReport]:
    """A copy of ``model`` with conv/linear weights as (scaled) powers of two, and its size.

    Same as ``apply(model, PowerOfTwoConfig(bits, scale), overrides={p: None for p in
    exclude}, calib=calib)``, with the storage report as a :class:`StorageReport`.

    Example:
        >>> m, rep = pow2_quantize_model(nn.Sequential(nn.Linear(64, 64)), bits=4)
        >>> rep.ratio > 5
        True
    """
    out, rec = apply(
        model, PowerOfTwoConfig(bits, scale), overrides={p: None for p in exclude}, calib=calib
    )
    return out, StorageReport.from_dict(rec.details["storage"])
