"""The deployable ONNX of a pipeline model: INT8 QDQ when it is fake-quantized, else FP32."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from edgeslim.models.inputs import InputSpec


def is_qat(model: nn.Module) -> bool:
    """True when ``model`` holds quantization-aware-training layers (:mod:`edgeslim.quant.qat`)."""
    from edgeslim.quant.qat.layers import qat_layers

    return any(True for _ in qat_layers(model))


def is_fake_quantized(model: nn.Module) -> bool:
    """True when ``model`` holds an active fake quantizer (PTQ's or a QAT method's)."""
    from edgeslim.quant.fake_quant import fake_quantizers

    return any(fq.quantizing for _, fq in fake_quantizers(model)) or is_qat(model)


def export_deployable(model: nn.Module, spec: InputSpec, path: Path, opset: int = 18) -> Path:
    """Write ``model`` as it deploys: INT8 QDQ (edgeslim's scales) or parity-checked FP32.

    Sparsity masks are squashed in a copy first: the file holds the zeros, not
    the dense weights plus a mask. A QAT model on the 8-bit grid writes INT8 QDQ; any
    other QAT model (activations below 8 bits, unhardened binary/ternary/DoReFa/DSQ
    weights) writes the float graph of its simulation: its quantization is simulated only.
    """
    from edgeslim.sparsity import masked_layers, squashed

    if masked_layers(model):
        model = squashed(model)
    if is_qat(model):
        from edgeslim.workflows.qat import export_deployable_qat

        return export_deployable_qat(model, spec, path, opset)
    if is_fake_quantized(model):
        from edgeslim.quant.qdq import export_qdq

        return export_qdq(model, spec, path, opset=opset).path
    from edgeslim.export.onnx import export_onnx

    return export_onnx(model, spec, path, opset=opset).path


def pack_low_bits(path: Path, bits: dict[str, int]) -> str:
    """Store the weights of layers at 4 bits or fewer (``bits``: layer -> weight bits) packed
    as INT4 in the QDQ file at ``path`` (in place, atomically): the size gain is real.

    Returns a note for the report, which says that ONNX Runtime runs those layers as
    float convs (it has no INT4 conv kernel on CPU): smaller, not faster. Weights of
    8-bit layers never fit in 4 bits (min-max scales put a code at the grid's edge),
    so only the low-bit layers are retyped.
    """
    n = sum(1 for b in bits.values() if b is not None and b <= 4)
    if not n:
        return ""
    from edgeslim.quant.qat.pack import int4_weights

    got = int4_weights(path, path)["int4"]
    return (
        f"; {got} weight tensors of {n} layers at <= 4 bits stored packed as INT4: smaller on "
        "disk, but ONNX Runtime has no INT4 conv kernel on CPU, so they run as float convs"
    )
