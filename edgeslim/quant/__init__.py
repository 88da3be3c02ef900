"""Post-training quantization: primitives, calibrators, fake-quant, the PTQ flow, and
weight-only codings (power-of-two, k-means sharing, fp16/bf16).

Example:
    >>> from edgeslim.quant import PTQConfig, quantize_ptq
    >>> # qm = quantize_ptq(model, calib_loader, PTQConfig(bias_correction=True))
"""

from edgeslim.quant.config import PTQConfig, QuantSpec, activation_spec, weight_spec
from edgeslim.quant.graph import Placement, attach_quantizers_, insert_activation_quantizers
from edgeslim.quant.half import to_half
from edgeslim.quant.kmeans import kmeans_share_model
from edgeslim.quant.log2 import pow2_quantize_model
from edgeslim.quant.ptq import QuantizedModel, calibrate_, prepare, quantize_ptq

__all__ = [
    "PTQConfig",
    "Placement",
    "QuantSpec",
    "QuantizedModel",
    "activation_spec",
    "attach_quantizers_",
    "calibrate_",
    "insert_activation_quantizers",
    "kmeans_share_model",
    "pow2_quantize_model",
    "prepare",
    "quantize_ptq",
    "to_half",
    "weight_spec",
]
