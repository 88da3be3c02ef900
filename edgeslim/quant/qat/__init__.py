"""Quantization-aware training: one file per method, each a frozen config plus a quantizer.

Every method is applied with :func:`edgeslim.core.methods.apply_` (importing this
package registers them all); the result keeps training as an ordinary PyTorch
model, saves and reloads (:mod:`edgeslim.models.saved`), and an 8-bit model on
the integer grid exports as INT8 QDQ (:mod:`edgeslim.quant.qat.export`).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from edgeslim.core.methods import apply
    >>> m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
    ...                   nn.Linear(8 * 6 * 6, 10))
    >>> q, rec = apply(m, LSQConfig(w_bits=4, a_bits=4), calib=[torch.randn(4, 3, 8, 8)])
    >>> sorted(rec.layers), rec.details["bn_pairs"]
    (['0', '4'], [['0', '1']])
"""

from edgeslim.quant.qat.binary import BinaryConfig
from edgeslim.quant.qat.common import FixedQuantizer, Grid, QATConfig, Quantizer
from edgeslim.quant.qat.dorefa import DoReFaConfig
from edgeslim.quant.qat.dsq import DSQConfig
from edgeslim.quant.qat.export import check_exportable, export_qat_qdq, harden_, to_fake_quant_
from edgeslim.quant.qat.handler import freeze_
from edgeslim.quant.qat.layers import QATConv2d, QATLinear, qat_layers
from edgeslim.quant.qat.learned_bits import LearnedBitsConfig
from edgeslim.quant.qat.lsq import LSQConfig
from edgeslim.quant.qat.lsq_plus import LSQPlusConfig
from edgeslim.quant.qat.pact import PACTConfig
from edgeslim.quant.qat.ste import STEConfig
from edgeslim.quant.qat.ternary import TernaryConfig

# the method names of the CLI and the recipe stage
CONFIGS: dict[str, type[QATConfig]] = {
    "ste": STEConfig,
    "lsq": LSQConfig,
    "lsq_plus": LSQPlusConfig,
    "pact": PACTConfig,
    "dorefa": DoReFaConfig,
    "dsq": DSQConfig,
    "binary": BinaryConfig,
    "ternary": TernaryConfig,
    "learned_bits": LearnedBitsConfig,
}

__all__ = [
    "CONFIGS",
    "BinaryConfig",
    "DSQConfig",
    "DoReFaConfig",
    "FixedQuantizer",
    "Grid",
    "LSQConfig",
    "LearnedBitsConfig",
    "LSQPlusConfig",
    "PACTConfig",
    "QATConfig",
    "QATConv2d",
    "QATLinear",
    "Quantizer",
    "STEConfig",
    "TernaryConfig",
    "check_exportable",
    "export_qat_qdq",
    "freeze_",
    "harden_",
    "qat_layers",
    "to_fake_quant_",
]
