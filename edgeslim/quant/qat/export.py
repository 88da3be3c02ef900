"""From a QAT model to INT8 QDQ: check, harden onto the grid, convert, export.

* :func:`check_exportable` raises a clear :class:`~edgeslim.core.errors.EdgeslimError`
  unless every quantizer is an affine quantization that ONNX ``QuantizeLinear`` /
  ``DequantizeLinear`` express: weights on an int8 grid with zero point 0,
  activations per tensor on the full 8-bit ``[0, 255]`` or ``[-128, 127]``
  range. Activations below 8 bits are simulated only (ONNX Runtime's CPU
  kernels take 8-bit activations), and quantizers that are no affine function
  of their input (DoReFa's tanh, DSQ, LSQ+'s continuous offset, binary,
  ternary) must be hardened first.
* :func:`harden_` stores each such weight as its quantized values with the
  integer grid they lie on (exactly: binary ``alpha {-1, 1}``, ternary
  ``alpha {-1, 0, 1}``, DoReFa and DSQ odd multiples of a half step), rounds
  LSQ+'s offset to a whole zero point, and folds each BN into its conv with the
  running statistics. Binary and ternary weights then export as int8 codes:
  the file is not smaller than INT8 and no kernel runs faster (size only in a
  packed format, which this writer does not produce).
* :func:`to_fake_quant_` turns the QAT twins into the PTQ fake-quant layers of
  :mod:`edgeslim.quant.fake_quant` (frozen scales, int32 bias), which
  :func:`edgeslim.quant.qdq.export_qdq` writes and checks against ONNX Runtime.

Each layer's *input* is quantized (the QAT placement); residual adds and
pooling outputs stay in float in the file.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.select import swap_module_
from edgeslim.export.onnx import DEFAULT_OPSET
from edgeslim.quant.config import QuantSpec
from edgeslim.quant.fake_quant import ONNX_RANGES, QuantConv2d, QuantLinear
from edgeslim.quant.qat.common import FixedQuantizer, Grid, Quantizer
from edgeslim.quant.qat.layers import QATConv2d, qat_layers
from edgeslim.quant.qdq import QDQ_ATOL, QDQExportResult, export_qdq

INT8 = (-128, 127)


def _affine(q: Quantizer) -> bool:
    return bool(getattr(q, "affine", True))


def _weight_problem(q: Quantizer) -> str | None:
    if not _affine(q):
        return f"{type(q).__name__} is no affine quantization of the stored weight"
    g = q.grid()
    if bool((g.zero_point != 0).any()):
        return "QDQ weights need zero point 0"
    if g.qmin < INT8[0] or g.qmax > INT8[1]:
        return f"its codes [{g.qmin}, {g.qmax}] do not fit int8"
    return None


def _input_problem(q: Quantizer) -> str | None:
    if not _affine(q):
        return f"{type(q).__name__} is no affine quantization of the input"
    g = q.grid()
    if g.scale.numel() != 1 or (g.qmin, g.qmax) not in ONNX_RANGES:
        return (
            f"{q.bits}-bit activations on [{g.qmin}, {g.qmax}] are simulated only: ONNX "
            "Runtime's integer kernels take per-tensor 8-bit activations on [0, 255] or "
            "[-128, 127]"
        )
    return None


def check_exportable(model: nn.Module) -> None:
    """Raise :class:`EdgeslimError` naming the first layer that INT8 QDQ cannot express.

    Example:
        >>> from edgeslim.core.methods import apply
        >>> from edgeslim.quant.qat.lsq import LSQConfig
        >>> m, _ = apply(nn.Sequential(nn.Linear(4, 2)), LSQConfig(a_bits=4),
        ...              calib=[torch.randn(4, 4)])
        >>> try:
        ...     check_exportable(m)
        ... except EdgeslimError as e:
        ...     print(str(e)[:45])
        layer '0' input: 4-bit activations on [-8, 7]
    """
    for name, layer in qat_layers(model):
        if layer.weight_q is not None:
            why = _weight_problem(layer.weight_q)
            if why:
                hint = "; call harden_() first" if not _affine(layer.weight_q) else ""
                raise EdgeslimError(f"layer {name!r} weight: {why}{hint}")
        if layer.input_q is not None:
            why = _input_problem(layer.input_q)
            if why:
                hint = "; call harden_() first" if not _affine(layer.input_q) else ""
                raise EdgeslimError(f"layer {name!r} input: {why}{hint}")


def _fold_bn_(layer: nn.Module) -> None:
    """Fold the layer's BN (running statistics) into its weight and bias for good."""
    if layer.bn is None:
        return
    with torch.no_grad():
        w, b = layer.folded()
        w, b = w.detach().clone(), b.detach().clone()
    layer.weight = nn.Parameter(w)
    layer.bias = nn.Parameter(b)
    layer.bn = None


def harden_(model: nn.Module, atol: float = 1e-6, inputs: bool = True) -> dict:
    """Put every quantizer of ``model`` onto a fixed integer grid, in place (eval mode).

    ``inputs=False`` hardens the weights only (the packed float graph keeps the
    input quantizers' simulation as they are). Returns ``{"layers": n hardened,
    "bn_folded": n}``. The outputs do not change, except where LSQ+'s offset is
    rounded to a whole zero point (at most half a step). The hardened model
    exports, but no longer trains as its method.
    """
    model.eval()
    hardened = folded = 0
    for name, layer in qat_layers(model):
        if layer.bn is not None:
            _fold_bn_(layer)
            folded += 1
        wq = layer.weight_q
        if wq is not None and not _affine(wq):
            with torch.no_grad():
                w = wq(layer.weight).detach().clone()
                fixed = FixedQuantizer(wq.grid(layer.weight.detach()), wq.bits)
                err = float((fixed(w) - w).abs().max())
            if err > atol * max(1.0, float(w.abs().max())):
                raise EdgeslimError(f"layer {name!r}: its weights are off their grid by {err:.3g}")
            layer.weight = nn.Parameter(w)
            layer.weight_q = fixed
            hardened += 1
        iq = layer.input_q
        if inputs and iq is not None and not _affine(iq):
            grid = iq.grid()
            if grid is None:
                raise EdgeslimError(
                    f"layer {name!r}: its input quantizer ({type(iq).__name__}, signed) has "
                    "no integer grid; keep the layer in float (exclude) or use another method"
                )
            layer.input_q = FixedQuantizer(grid, iq.bits)
            hardened += 1
    return {"layers": hardened, "bn_folded": folded}


def _fake_quantize(grid: Grid, weight: bool, channels: int):
    """A frozen :class:`~edgeslim.quant.fake_quant.FakeQuantize` on ``grid``."""
    from edgeslim.quant.fake_quant import FakeQuantize

    signed = grid.qmin < 0
    if weight:
        spec = QuantSpec(8, True, True, "channel")
        fq = FakeQuantize(spec, ch_axis=0)
        scale = grid.scale.detach().float().reshape(-1).expand(channels).clone()
        zero = torch.zeros(channels, dtype=torch.int32)
    else:
        spec = QuantSpec(8, signed, False, "tensor")
        fq = FakeQuantize(spec)
        scale = grid.scale.detach().float().reshape(1).clone()
        zero = grid.zero_point.detach().reshape(1).to(torch.int32)
    fq.scale, fq.zero_point = scale, zero
    fq.qmin = torch.tensor(float(grid.qmin))
    fq.qmax = torch.tensor(float(grid.qmax))
    fq.observing, fq.quantizing = False, True
    fq._cache_scalars()
    return fq


def to_fake_quant_(model: nn.Module) -> nn.Module:
    """Swap every QAT twin for the PTQ fake-quant layer on the same grids (checked first)."""
    check_exportable(model)
    model.eval()
    for name, layer in list(qat_layers(model)):
        with torch.no_grad():
            w, b = layer.folded()
        if isinstance(layer, QATConv2d):
            flt = nn.Conv2d(
                layer.in_channels,
                layer.out_channels,
                layer.kernel_size,
                layer.stride,
                layer.padding,
                layer.dilation,
                layer.groups,
                b is not None,
                layer.padding_mode,
            )
            twin = QuantConv2d
        else:
            flt = nn.Linear(layer.in_features, layer.out_features, b is not None)
            twin = QuantLinear
        flt.weight = nn.Parameter(w.detach().clone())
        if b is not None:
            flt.bias = nn.Parameter(b.detach().clone())
        new = twin.from_float(flt, None)
        if layer.weight_q is not None:
            new.weight_fq = _fake_quantize(layer.weight_q.grid(), True, w.shape[0])
        if layer.input_q is not None:
            new.input_fq = _fake_quantize(layer.input_q.grid(), False, 1)
            new.set_bias_scale(new.input_fq.scale)
        swap_module_(model, name, new)
    return model


def export_qat_qdq(
    model: nn.Module,
    input_spec,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    atol: float | None = QDQ_ATOL,
) -> QDQExportResult:
    """Write a (hardened) QAT model as INT8 QDQ ONNX; the model itself is not changed.

    ONNX Runtime's outputs are checked against the converted simulation within
    ``atol`` (see :func:`edgeslim.quant.qdq.export_qdq`).
    """
    check_exportable(model)
    converted = to_fake_quant_(copy.deepcopy(model))
    return export_qdq(converted, input_spec, path, opset=opset, atol=atol)
