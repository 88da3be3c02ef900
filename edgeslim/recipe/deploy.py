"""The deployable ONNX of a pipeline model: INT8 QDQ when it is fake-quantized, else FP32."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from edgeslim.models.inputs import InputSpec


def is_fake_quantized(model: nn.Module) -> bool:
    """True when ``model`` holds an active fake quantizer."""
    from edgeslim.quant.fake_quant import fake_quantizers

    return any(fq.quantizing for _, fq in fake_quantizers(model))


def export_deployable(model: nn.Module, spec: InputSpec, path: Path, opset: int = 18) -> Path:
    """Write ``model`` as it deploys: INT8 QDQ (edgeslim's scales) or parity-checked FP32.

    Sparsity masks are squashed in a copy first: the file holds the zeros, not
    the dense weights plus a mask.
    """
    from edgeslim.sparsity import masked_layers, squashed

    if masked_layers(model):
        model = squashed(model)
    if is_fake_quantized(model):
        from edgeslim.quant.qdq import export_qdq

        return export_qdq(model, spec, path, opset=opset).path
    from edgeslim.export.onnx import export_onnx

    return export_onnx(model, spec, path, opset=opset).path
