"""Low-bit weights stored as what they are: int2, int4 or int8 codes plus a scale, in ONNX.

A QAT model whose activations are below 8 bits, or whose weights are binary,
ternary or otherwise off the INT8 QDQ path, deploys as the float graph of its
simulation (:mod:`edgeslim.workflows.qat`). Written plainly, that graph stores
every weight as float32: a 4-bit model would be as large as the float one.
:func:`export_packed` writes the same graph with each quantized weight as an
integer initializer and a ``DequantizeLinear`` (per output channel), in 2 bits
(opset 25's ``INT2``, four codes a byte) when its codes fit ``[-2, 1]`` (binary,
ternary and 2-bit weights), in 4 bits (opset 21's ``INT4``, two codes a byte) when
they fit ``[-8, 7]``, else in 8 bits. The file is then really smaller.

What it does not buy, said plainly: ONNX Runtime folds ``DequantizeLinear`` of
a constant into a float weight when the session starts, so the layers run at
float speed (it has no int4 convolution kernel on CPU, ORT #25631), and
activations below 8 bits stay simulated in float. ONNX has no 1-bit type, so a
binary weight takes 2 bits here, not 1. ONNX Runtime reads ``INT2`` from opset 25
on; a file with 2-bit weights is written at that opset, others at 21.

:func:`int4_weights` retypes the int8 weight codes of an INT8 QDQ file that fit
in 4 bits. That halves those weights on disk but takes them off ORT's
``QLinearConv`` path (which needs int8 weights): a size-for-speed trade, only on
request.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from edgeslim.core.atomic import atomic_path
from edgeslim.core.errors import EdgeslimError
from edgeslim.quant.qat.export import harden_
from edgeslim.quant.qat.layers import qat_layers

INT2 = (-2, 1)
INT4 = (-8, 7)
RANGES = {2: INT2, 4: INT4}  # code range of each packed width, narrowest first
INT4_OPSET = 21  # the first opset whose DequantizeLinear takes INT4
INT2_OPSET = 25  # ... and INT2


@dataclass
class PackResult:
    """What :func:`export_packed` wrote: the file, its size and each layer's storage."""

    path: Path
    size_bytes: int
    storage: dict[str, str] = field(default_factory=dict)  # layer -> "int2" | "int4" | "int8"
    max_abs_diff: float = 0.0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for kind in self.storage.values():
            out[kind] = out.get(kind, 0) + 1
        return out


def _pack(codes: np.ndarray, bits: int) -> bytes:
    """Signed ``bits``-wide codes, ``8 // bits`` a byte, the first in the lowest bits."""
    lo, hi = RANGES[bits]
    flat = codes.astype(np.int8).reshape(-1)
    if flat.size and (flat.min() < lo or flat.max() > hi):
        raise EdgeslimError(f"int{bits} codes must lie in [{lo}, {hi}]")
    per = 8 // bits
    flat = np.concatenate([flat, np.zeros(-flat.size % per, np.int8)])
    u = flat.view(np.uint8) & ((1 << bits) - 1)
    out = np.zeros(flat.size // per, np.uint8)
    for k in range(per):
        out |= u[k::per] << (bits * k)
    return out.tobytes()


def pack_int4(codes: np.ndarray) -> bytes:
    """Two signed 4-bit codes per byte, the first in the low nibble (ONNX's INT4 layout).

    Example:
        >>> pack_int4(np.array([1, -1, 7], dtype=np.int8)).hex()
        'f107'
    """
    return _pack(codes, 4)


def pack_int2(codes: np.ndarray) -> bytes:
    """Four signed 2-bit codes per byte, the first in the lowest bits (ONNX's INT2 layout).

    Example:
        >>> pack_int2(np.array([1, -1, 0, -2, 1], dtype=np.int8)).hex()
        '8d01'
    """
    return _pack(codes, 2)


def code_bits(codes: np.ndarray) -> int:
    """The fewest bits ONNX can store ``codes`` in: 2, 4 or 8."""
    lo, hi = int(codes.min(initial=0)), int(codes.max(initial=0))
    for bits, (a, b) in RANGES.items():
        if a <= lo and hi <= b:
            return bits
    return 8


def int_initializer(name: str, codes: np.ndarray, bits: int) -> TensorProto:
    """``codes`` as an INT2 / INT4 (packed, raw) or INT8 initializer."""
    if bits == 2:
        return helper.make_tensor(name, TensorProto.INT2, codes.shape, pack_int2(codes), raw=True)
    if bits == 4:
        return helper.make_tensor(name, TensorProto.INT4, codes.shape, pack_int4(codes), raw=True)
    return numpy_helper.from_array(codes.astype(np.int8), name)


@dataclass(frozen=True)
class _Weight:
    layer: str
    values: np.ndarray  # the quantized weight as the float graph holds it
    codes: np.ndarray  # int codes, same shape
    scale: np.ndarray  # per output channel (dim 0)


def quantized_weights(model: nn.Module) -> list[_Weight]:
    """Each QAT layer's weight on its grid, as codes and per-channel scales (BN folded)."""
    out = []
    for name, layer in qat_layers(model):
        q = layer.weight_q
        if q is None:
            continue
        w = layer.weight.detach().float()
        g = q.grid(w)
        if g is None or bool((g.zero_point != 0).any()):
            raise EdgeslimError(f"layer {name!r}: its weight grid has no zero point 0")
        s = g.scale.detach().float().reshape(-1)
        s = s.expand(w.shape[0]) if s.numel() == 1 else s
        shape = [-1] + [1] * (w.dim() - 1)
        wq = q(w).detach()
        codes = torch.round(wq / s.reshape(shape)).clamp(g.qmin, g.qmax)
        if not torch.allclose(codes * s.reshape(shape), wq, rtol=1e-5, atol=1e-7):
            raise EdgeslimError(f"layer {name!r}: its quantized weight is off its grid")
        out.append(_Weight(name, wq.numpy(), codes.to(torch.int8).numpy(), s.numpy().copy()))
    return out


def channel_scales(values: np.ndarray, codes: np.ndarray) -> np.ndarray | None:
    """Per-channel (dim 0) ``s`` with ``values == codes * s``, or None if there is none.

    The exporter may fold a constant factor into a weight (a scalar multiply of
    the layer's input, say); the codes stay, the scale absorbs it.
    """
    v = values.reshape(values.shape[0], -1).astype(np.float64)
    c = codes.reshape(codes.shape[0], -1).astype(np.float64)
    cc = (c * c).sum(1)
    s = np.where(cc > 0, (v * c).sum(1) / np.maximum(cc, 1), 1.0)
    ok = np.allclose(c * s[:, None], v, rtol=1e-5, atol=1e-7 * max(1.0, float(np.abs(v).max())))
    return s.astype(np.float32) if ok else None


def _find(graph, w: _Weight, taken: set[int]) -> tuple[int, int, np.ndarray] | None:
    """``(initializer index, axis, scales)`` of the float initializer holding ``w``."""
    want = f"{w.layer}.weight"
    order = sorted(range(len(graph.initializer)), key=lambda i: graph.initializer[i].name != want)
    for i in order:
        init = graph.initializer[i]
        if i in taken or init.data_type != TensorProto.FLOAT:
            continue
        dims = tuple(init.dims)
        for axis, codes in ((0, w.codes), (1, w.codes.T if w.codes.ndim == 2 else None)):
            if codes is None or dims != codes.shape:
                continue
            values = numpy_helper.to_array(init)
            s = channel_scales(values if axis == 0 else values.T, w.codes)
            if s is not None:
                return i, axis, s
    return None


def _dq_nodes(init: TensorProto, w: _Weight, axis: int, scale: np.ndarray, bits: int):
    base = init.name
    q = int_initializer(f"{base}_codes", w.codes if axis == 0 else w.codes.T, bits)
    s = numpy_helper.from_array(scale.astype(np.float32), f"{base}_scale")
    node = helper.make_node(
        "DequantizeLinear", [q.name, s.name], [base], name=f"{base}_dq", axis=axis
    )
    return [q, s], node


def replace_weights(proto: onnx.ModelProto, weights: list[_Weight]) -> dict[str, str]:
    """Swap each float initializer equal to a quantized weight for codes + DequantizeLinear.

    An initializer holds a layer's weight when it is its codes times one scale per
    output channel (the layer's own name first; the transpose for a MatMul the
    exporter wrote with ``W^T``). Returns ``{layer: "int2" | "int4" | "int8"}``; a
    layer whose weight is not found raises. Opset and IR version rise to what INT2
    needs when a weight is stored in 2 bits.
    """
    graph = proto.graph
    replaced, storage, new_nodes, new_inits = set(), {}, [], []
    for w in weights:
        found = _find(graph, w, replaced)
        if found is None:
            raise EdgeslimError(f"layer {w.layer!r}: its weight is not in the exported graph")
        i, axis, scale = found
        bits = code_bits(w.codes)
        inits, node = _dq_nodes(graph.initializer[i], w, axis, scale, bits)
        replaced.add(i)
        new_inits += inits
        new_nodes.append(node)
        storage[w.layer] = f"int{bits}"
    kept = [init for i, init in enumerate(graph.initializer) if i not in replaced]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    for node in reversed(new_nodes):
        graph.node.insert(0, node)
    if "int2" in storage.values():
        _set_opset(proto, INT2_OPSET)
        ir = helper.find_min_ir_version_for([helper.make_opsetid("", INT2_OPSET)])
        proto.ir_version = max(proto.ir_version, ir)
    return storage


def export_packed(
    model: nn.Module, input_spec, path: str | Path, *, atol: float = 1e-4
) -> PackResult:
    """Write the float graph of a QAT model's simulation with its weights stored as int codes.

    The model is not changed. ONNX Runtime's outputs on the packed file are
    checked against the hardened simulation within ``atol`` (relative to the
    output's magnitude).
    """
    from edgeslim.export.onnx import export_onnx
    from edgeslim.export.ort import ort_session

    m = copy.deepcopy(model).eval()
    harden_(m, inputs=False)
    weights = quantized_weights(m)
    if not weights:
        raise EdgeslimError("the model has no quantized weights to pack")
    for _, layer in qat_layers(m):
        if layer.weight_q is not None:
            with torch.no_grad():
                layer.weight = nn.Parameter(layer.weight_q(layer.weight.detach()))
            layer.weight_q = None  # the graph holds the quantized weight itself
    path = Path(path)
    with atomic_path(path) as tmp:
        export_onnx(m, input_spec, tmp, opset=INT4_OPSET, atol=atol)
        proto = onnx.load(str(tmp))
        storage = replace_weights(proto, weights)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        x = input_spec.example(2)
        with torch.no_grad():
            want = m(x)
        sess = ort_session(tmp)
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        want = want.numpy() if torch.is_tensor(want) else np.asarray(want[0])
        diff = float(np.abs(got - want).max())
        if diff > atol * max(1.0, float(np.abs(want).max())):
            raise EdgeslimError(f"the packed file differs from the simulation by {diff:.3g}")
    return PackResult(path, path.stat().st_size, storage, diff)


def int4_weights(path: str | Path, out: str | Path) -> dict[str, int]:
    """Retype the int8 weight codes of a QDQ file that fit in 4 bits to INT4 (opset 21).

    Returns ``{"int4": n, "int8": m}`` initializers. ``path`` is not changed.
    """
    proto = onnx.load(str(path))
    graph = proto.graph
    dq_inputs = {n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    counts = {"int4": 0, "int8": 0}
    for i, init in enumerate(graph.initializer):
        if init.name not in dq_inputs or init.data_type != TensorProto.INT8:
            continue
        codes = numpy_helper.to_array(init)
        if codes.ndim < 2 or code_bits(codes) > 4:
            counts["int8"] += 1
            continue
        graph.initializer[i].CopyFrom(int_initializer(init.name, codes, 4))
        counts["int4"] += 1
    if counts["int4"]:
        _set_opset(proto, INT4_OPSET)
        # the zero point of a retyped weight must be INT4 too
        index = {init.name: j for j, init in enumerate(graph.initializer)}
        retyped = {i.name for i in graph.initializer if i.data_type == TensorProto.INT4}
        for n in graph.node:
            if n.op_type != "DequantizeLinear" or n.input[0] not in retyped or len(n.input) < 3:
                continue
            j = index.get(n.input[2])
            if j is not None and graph.initializer[j].data_type == TensorProto.INT8:
                z = numpy_helper.to_array(graph.initializer[j])
                graph.initializer[j].CopyFrom(int_initializer(n.input[2], z, 4))
    onnx.checker.check_model(proto)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    return counts


def _set_opset(proto: onnx.ModelProto, version: int) -> None:
    for op in proto.opset_import:
        if op.domain in ("", "ai.onnx") and op.version < version:
            op.version = version


def weight_storage(path: str | Path) -> dict[str, int]:
    """How many initializers of the ONNX file at ``path`` are int2/int4/int8/float32 weights.

    Only initializers of two or more dimensions count (weights, not scales or biases).
    """
    names = {
        TensorProto.INT2: "int2",
        TensorProto.INT4: "int4",
        TensorProto.INT8: "int8",
        TensorProto.FLOAT: "float32",
    }
    out: dict[str, int] = {}
    for init in onnx.load(str(path), load_external_data=False).graph.initializer:
        kind = names.get(init.data_type)
        if kind is not None and len(init.dims) >= 2:
            out[kind] = out.get(kind, 0) + 1
    return out
