"""Power-of-two weights as a registered method: ``apply_(model, PowerOfTwoConfig(bits=4))``.

The coding itself (ShiftCNN / DeepShift) is :func:`edgeslim.quant.log2.pow2_quantize`;
this file only plugs it into :mod:`edgeslim.core.methods`. Only values change, so a
saved model reloads without replaying anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import Method, MethodConfig, register_method
from edgeslim.quant.log2 import pow2_quantize
from edgeslim.quant.storage import account, codable


@dataclass(frozen=True)
class PowerOfTwoConfig(MethodConfig):
    """Each conv/linear weight becomes ``sign * 2^e`` with ``bits``-bit codes.

    Example:
        >>> PowerOfTwoConfig(bits=5).bits
        5
    """

    bits: int = 4

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 8:
            raise EdgeslimError(f"power-of-two bits must be in 2..8, got {self.bits}")


@register_method(PowerOfTwoConfig, "power_of_two")
class PowerOfTwo(Method):
    def apply_(self, model, config, layers, calib):
        coded = {}
        for name, mod, cfg in layers.select(model, codable):
            with torch.no_grad():
                mod.weight.copy_(pow2_quantize(mod.weight, cfg.bits))
            # codes + one byte per output channel (its top exponent)
            coded[f"{name}.weight" if name else "weight"] = (cfg.bits, mod.weight.shape[0])
            layers.done(name, cfg)
        return model, {"storage": account(model, coded).to_dict()}
