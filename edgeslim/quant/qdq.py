"""Write a fake-quantized model as an INT8 ONNX graph in QDQ form, with edgeslim's own qparams.

ONNX Runtime turns ``DequantizeLinear -> Conv -> QuantizeLinear`` (and Gemm,
MatMul, Add, pooling, ...) into integer kernels (``QLinearConv`` etc.,
u8 activations x s8 weights on x86 VNNI). The writer:

1. exports the fake-quant model with the standard exporter
   (:func:`edgeslim.export.onnx.export_onnx`) while quantized layers use their
   *float* weights; every activation quantizer is
   ``torch.fake_quantize_per_tensor_affine`` and lowers to a
   ``QuantizeLinear -> DequantizeLinear`` pair carrying its calibrated scale and
   zero-point, exactly where the simulation quantizes;
2. replaces each quantized layer's float weight initializer (named after the
   parameter's qualified name by the dynamo exporter) with int8 codes computed
   by :mod:`edgeslim.quant.primitives` plus a per-channel ``DequantizeLinear``;
3. stores each bias as int32 at scale ``s_x * s_w`` (what QLinearConv adds to
   its int32 accumulator).

No scale is recomputed by another tool. Jacob et al. 2018 describe the integer
arithmetic the runtime then executes. The written file is then checked, output by
output (models with several outputs included), against the fake-quant simulation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from edgeslim.core.atomic import atomic_path
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode
from edgeslim.export.onnx import DEFAULT_OPSET, export_onnx, output_parity
from edgeslim.models.inputs import InputSpec
from edgeslim.quant.fake_quant import (
    ONNX_RANGES,
    _QuantWeight,
    bias_codes,
    bias_scale,
    fake_quantizers,
    float_weights,
)
from edgeslim.quant.primitives import quantize

_WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
# ONNX Runtime's integer kernels round each requantization on their own; one-step
# differences from the simulation propagate to a few tenths of a percent of an output's
# range (ResNet-20: 0.8%). A wrong scale, a lost bias or a swapped output costs far more.
QDQ_ATOL = 0.05


@dataclass(frozen=True)
class QDQExportResult:
    path: Path
    size_bytes: int
    quantized_weights: int  # layers stored as int8
    activation_qdq: int  # QuantizeLinear nodes on activations
    # per named output, max |ONNX Runtime - fake-quant simulation| (empty when not checked)
    output_diffs: dict[str, float] = field(default_factory=dict)


def check_exportable(model: nn.Module) -> None:
    """Raise unless every active quantizer maps onto an ONNX 8-bit type."""
    for name, fq in fake_quantizers(model):
        if not fq.quantizing or name.endswith("weight_fq"):
            continue
        rng = fq.per_tensor_int_range
        if rng not in ONNX_RANGES:
            raise EdgeslimError(
                f"activation quantizer {name} ({fq.spec.bits} bits, {fq.spec.granularity}) "
                "has no ONNX integer type; export needs 8-bit per-tensor activations"
            )
    for name, m in model.named_modules():
        if isinstance(m, _QuantWeight) and m.weight_fq is not None:
            if m.weight_fq.spec.granularity == "group":
                raise EdgeslimError(f"{name}: per-group weights cannot be exported to QDQ")
            if bool((m.weight_fq.zero_point != 0).any()):
                raise EdgeslimError(f"{name}: QDQ export needs symmetric (zero-point 0) weights")


def export_qdq(
    model: nn.Module,
    input_spec: InputSpec,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    atol: float | None = QDQ_ATOL,
) -> QDQExportResult:
    """Export the fake-quantized ``model`` (from :func:`~edgeslim.quant.ptq.quantize_ptq`).

    Every output of the file must agree with the simulation within
    ``atol * max(1, |output|max)`` (``atol=None`` skips the check); the error names
    the output that does not.

    Example:
        >>> # qm = quantize_ptq(model, loader, PTQConfig())
        >>> # export_qdq(qm.model, InputSpec((1, 3, 32, 32)), "int8.onnx")
    """
    check_exportable(model)
    path = Path(path)
    with atomic_path(path) as tmp:
        with float_weights(model):
            export_onnx(model, input_spec, tmp, opset=opset, check=False)
        proto = onnx.load(str(tmp))
        n_w = _quantize_weights(proto, model)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        diffs = {}
        if atol is not None:
            with eval_mode(model):
                try:
                    diffs = output_parity(model, input_spec, tmp, atol)
                except EdgeslimError as e:
                    raise EdgeslimError(f"QDQ export against the simulation: {e}") from None
    n_act = sum(1 for n in proto.graph.node if n.op_type == "QuantizeLinear")
    return QDQExportResult(path, path.stat().st_size, n_w, n_act, diffs)


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for i in node.input:
            out.setdefault(i, []).append(node)
    return out


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {o: node for node in graph.node for o in node.output}


def _quantize_weights(proto: onnx.ModelProto, model: nn.Module) -> int:
    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    consumers, producers = _consumers(g), _producers(g)
    new_nodes: list[onnx.NodeProto] = []
    count = 0
    for name, layer in model.named_modules():
        if not isinstance(layer, _QuantWeight) or layer.weight_fq is None:
            continue
        fq = layer.weight_fq
        w = layer.weight.detach().float()
        q = quantize(w, fq.scale, fq.zero_point, fq.qmin, fq.qmax, axis=0).to(torch.int8).numpy()
        scale = fq.scale.detach().float().reshape(-1).numpy()
        if scale.size == 1 and w.shape[0] > 1:
            scale = np.full(w.shape[0], scale[0], np.float32)
        wname, axis = f"{name}.weight", 0
        if wname not in inits:
            # a linear on 3-D inputs exports as MatMul with a constant-folded W^T
            wname, axis = _find_transposed(inits, w.numpy()), 1
            q = np.ascontiguousarray(q.T)
        if wname is None:
            raise EdgeslimError(
                f"QDQ export: the weight of {name!r} was not found in the exported graph"
            )
        _replace_initializer(g, inits, wname, q, scale, new_nodes, axis)
        count += 1
        # bias -> int32 at s_x * s_w, when the layer's input comes from a per-tensor DQ
        for node in consumers.get(wname, []):
            if node.op_type in ("Conv", "Gemm") and len(node.input) > 2:
                _quantize_bias(g, inits, node, producers, scale, new_nodes)
    # DQ nodes first: they only read initializers, so the graph stays topologically sorted
    nodes = new_nodes + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    _drop_unused_initializers(g)
    return count


def _find_transposed(inits: dict, w: np.ndarray) -> str | None:
    """Name of the initializer holding exactly ``w.T`` (None if absent)."""
    wt = np.ascontiguousarray(w.T)
    for name, init in inits.items():
        if tuple(init.dims) == wt.shape and init.data_type == onnx.TensorProto.FLOAT:
            if np.array_equal(numpy_helper.to_array(init), wt):
                return name
    return None


def _replace_initializer(
    g, inits, name, q: np.ndarray, scale: np.ndarray, new_nodes, axis: int = 0
) -> None:
    g.initializer.remove(inits.pop(name))
    qi = numpy_helper.from_array(q.astype(np.int8), f"{name}_quantized")
    si = numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale")
    zi = numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{name}_zero_point")
    g.initializer.extend([qi, si, zi])
    new_nodes.append(
        helper.make_node(
            "DequantizeLinear", [qi.name, si.name, zi.name], [name], name=f"{name}_DQ", axis=axis
        )
    )


def _constant(name: str, inits, producers) -> np.ndarray | None:
    """Value of an initializer or ``Constant`` node output (None if computed at run time)."""
    if name in inits:
        return numpy_helper.to_array(inits[name])
    node = producers.get(name)
    if node is not None and node.op_type == "Constant":
        for attr in node.attribute:
            if attr.name == "value":
                return numpy_helper.to_array(attr.t)
            if attr.name == "value_float":
                return np.array(attr.f, np.float32)
    return None


def _quantize_bias(g, inits, node, producers, w_scale: np.ndarray, new_nodes) -> None:
    """Give ``node`` its own int32 bias at scale ``s_x * s_w``.

    The exporter deduplicates equal initializers (e.g. all-zero biases), so a bias
    may be shared by layers with different scales: each node gets a private copy.
    """
    bname = node.input[2]
    b = _constant(bname, inits, producers)
    dq = producers.get(node.input[0])
    if b is None or dq is None or dq.op_type != "DequantizeLinear":
        return
    x_scale = _constant(dq.input[1], inits, producers)
    if x_scale is None or x_scale.size != 1:
        return
    # the same scale and codes as the simulation (edgeslim.quant.fake_quant.quantize_bias)
    bscale = bias_scale(torch.tensor(x_scale), torch.tensor(w_scale)).numpy()
    qb = bias_codes(torch.tensor(b), torch.tensor(bscale)).numpy().astype(np.int32)
    stem = f"{node.name or bname}_bias"
    qi = numpy_helper.from_array(qb, f"{stem}_quantized")
    si = numpy_helper.from_array(bscale, f"{stem}_scale")
    zi = numpy_helper.from_array(np.zeros(bscale.shape, np.int32), f"{stem}_zero_point")
    g.initializer.extend([qi, si, zi])
    new_nodes.append(
        helper.make_node(
            "DequantizeLinear", [qi.name, si.name, zi.name], [stem], name=f"{stem}_DQ", axis=0
        )
    )
    node.input[2] = stem


def _drop_unused_initializers(g: onnx.GraphProto) -> None:
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
