"""Quantization: primitives, calibrators, fake-quant, the PTQ flow, and weight-only
codings (power-of-two, k-means sharing, fp16/bf16).

Every method is a config applied with one verb, :func:`edgeslim.core.methods.apply_`
(importing this package registers them all):

Example:
    >>> from edgeslim.core.methods import apply
    >>> from edgeslim.quant import PTQConfig
    >>> # qmodel, record = apply(model, PTQConfig(bias_correction=True), calib=loader)
"""

from edgeslim.quant.config import PTQConfig, QuantSpec, activation_spec, weight_spec
from edgeslim.quant.fake_quant import learn_scales_
from edgeslim.quant.graph import Placement, attach_quantizers_, insert_activation_quantizers
from edgeslim.quant.half import HalfConfig, to_half
from edgeslim.quant.kmeans import KMeansConfig, kmeans_share_model
from edgeslim.quant.power_of_two import PowerOfTwoConfig, pow2_quantize_model
from edgeslim.quant.ptq import QuantizedModel, calibrate_, prepare, quantize_ptq

__all__ = [
    "HalfConfig",
    "KMeansConfig",
    "PTQConfig",
    "Placement",
    "PowerOfTwoConfig",
    "QuantSpec",
    "QuantizedModel",
    "activation_spec",
    "attach_quantizers_",
    "calibrate_",
    "insert_activation_quantizers",
    "kmeans_share_model",
    "learn_scales_",
    "pow2_quantize_model",
    "prepare",
    "quantize_ptq",
    "to_half",
    "weight_spec",
]
