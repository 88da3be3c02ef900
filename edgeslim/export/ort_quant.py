"""ONNX Runtime's own Linear-layer quantizers, applied to an exported FP32 file.

Two post-export modes, both computed by ``onnxruntime.quantization`` (a maintained
library; edgeslim writes no kernel and no scale of its own here):

* ``dynamic``: :func:`onnxruntime.quantization.quantize_dynamic`. Weights of every
  ``MatMul`` with a constant weight are stored in INT8 (per output channel by default),
  activations are quantized per batch at run time (``DynamicQuantizeLinear``), and ORT
  fuses the pair into ``DynamicQuantizeMatMul`` / ``MatMulIntegerToFloat``. No
  calibration data. Attention's ``Q K^T`` and ``A V`` (two activations) stay in float,
  as ORT's ``MatMulConstBOnly`` default decides; so do ``Gemm`` layers, which
  ``quantize_dynamic`` does not quantize. Embedding tables (``Gather``) are stored in
  INT8 too.
* ``int4``: :class:`onnxruntime.quantization.matmul_nbits_quantizer.MatMulNBitsQuantizer`.
  Every ``MatMul`` with a constant weight becomes ``com.microsoft::MatMulNBits``:
  4-bit weights in blocks of ``block_size`` input channels, each block with its own
  scale (symmetric by default: no zero-points). Weight-only: activations stay float,
  unless ``accuracy_level=4``, which lets the kernel quantize them to INT8 per block.
  It buys size; whether it buys speed is measured in ``benchmarks/bert_ort.py``.

Both write atomically and refuse a graph without a ``MatMul`` that has a constant
weight (a CNN, whose ``Conv`` layers ORT has no INT4 CPU kernel for).

Example:
    >>> # export_onnx(model, spec, "fp32.onnx")
    >>> # quantize_onnx("fp32.onnx", "int4.onnx", OrtQuantConfig("int4"))
"""

from __future__ import annotations

import collections
import logging
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import onnx
from torch import nn

from edgeslim.core.atomic import atomic_path
from edgeslim.core.errors import EdgeslimError
from edgeslim.export.onnx import DEFAULT_OPSET, export_onnx, output_parity
from edgeslim.export.runtimes.base import file_precision
from edgeslim.models.inputs import InputSpec

MODES = ("dynamic", "int4")
# Parity of the quantized file against eager FP32, per output, scaled by max(1, |output|max):
# INT8 weights and activations move a random or trained BERT's logits by ~1% of that scale,
# 4-bit weights in blocks of 32 by a few percent; a lost layer or a wrong scale by far more.
ATOL = {"dynamic": 0.05, "int4": 0.15}


@dataclass(frozen=True)
class OrtQuantConfig:
    """How to quantize an FP32 ONNX file with ONNX Runtime's tools.

    Args:
        mode: ``"dynamic"`` (INT8 weights, INT8 activations computed per run) or
            ``"int4"`` (``MatMulNBits`` 4-bit weights).
        per_channel: dynamic: one weight scale per output channel (ORT's
            ``per_channel``); INT4 is always per block.
        reduce_range: dynamic: 7-bit weights for x86 CPUs without VNNI (None: auto).
        block_size: int4: input channels per scale block (a power of two, >= 16).
        symmetric: int4: symmetric blocks (no zero-points).
        accuracy_level: int4: ``MatMulNBits``' compute type (None: ORT's default, float
            activations; 4: INT8 activations, the fast path on VNNI CPUs).
    """

    mode: str = "dynamic"
    per_channel: bool = True
    reduce_range: bool | None = None
    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise EdgeslimError(f"ORT quantization mode {self.mode!r}: choose {' or '.join(MODES)}")
        bs = self.block_size
        if bs < 16 or bs & (bs - 1):
            raise EdgeslimError(f"block size {bs}: MatMulNBits needs a power of two >= 16")
        if self.accuracy_level not in (None, 0, 1, 2, 3, 4):
            raise EdgeslimError(f"accuracy level {self.accuracy_level}: choose 0-4")


@dataclass(frozen=True)
class OrtQuantResult:
    path: Path
    size_bytes: int
    fp32_size_bytes: int
    quantized: int  # MatMul nodes turned into integer ones
    ops: dict[str, int] = field(default_factory=dict)  # op type -> count in the written file
    # per named output, max |ONNX Runtime (quantized file) - eager FP32| (empty: not checked)
    output_diffs: dict[str, float] = field(default_factory=dict)


def weight_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names (or output names) of the ``MatMul`` nodes whose weight input is a constant."""
    consts = {i.name for i in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [
        n.name or n.output[0]
        for n in model.graph.node
        if n.op_type == "MatMul" and len(n.input) > 1 and n.input[1] in consts
    ]


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    return dict(collections.Counter(n.op_type for n in model.graph.node))


def quantize_onnx(src: str | Path, dest: str | Path, config: OrtQuantConfig) -> OrtQuantResult:
    """Quantize the FP32 ONNX file ``src`` into ``dest`` (written atomically).

    Raises :class:`EdgeslimError` when ``src`` is missing, already quantized, or has no
    ``MatMul`` with a constant weight to quantize.
    """
    src, dest = Path(src), Path(dest)
    if not src.is_file():
        raise EdgeslimError(f"ONNX model not found: {src}")
    try:
        model = onnx.load(str(src))
    except Exception as e:  # onnx raises DecodeError and friends
        raise EdgeslimError(f"{src} is not a readable ONNX model: {e}") from None
    if file_precision(src) is not None:
        raise EdgeslimError(f"{src} is already quantized; give the FP32 file")
    targets = weight_matmuls(model)
    if not targets:
        raise EdgeslimError(
            f"{src}: no MatMul with a constant weight (no Linear layer on a 3-D input); "
            f"{config.mode} quantization has nothing to do (ops: "
            f"{', '.join(sorted(op_counts(model)))})"
        )
    with atomic_path(dest) as tmp, _quiet():
        if config.mode == "dynamic":
            _dynamic(src, tmp, config)
        else:
            _int4(model, tmp, config)
        out = onnx.load(str(tmp))
        onnx.checker.check_model(out)
    ops = op_counts(out)
    left = set(weight_matmuls(out))
    return OrtQuantResult(
        dest, dest.stat().st_size, src.stat().st_size, len(set(targets) - left), ops
    )


def _dynamic(src: Path, dest: Path, config: OrtQuantConfig) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgeslim.core.cpu import int8_pairs_saturate

    reduce = int8_pairs_saturate() if config.reduce_range is None else config.reduce_range
    quantize_dynamic(
        src,
        dest,
        op_types_to_quantize=["MatMul", "Gather"],
        per_channel=config.per_channel,
        reduce_range=reduce,
        weight_type=QuantType.QInt8,
    )


def _int4(model: onnx.ModelProto, dest: Path, config: OrtQuantConfig) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    algo = DefaultWeightOnlyQuantConfig(
        block_size=config.block_size,
        is_symmetric=config.symmetric,
        accuracy_level=config.accuracy_level,
        op_types_to_quantize=("MatMul",),
        bits=4,
    )
    q = MatMulNBitsQuantizer(model, algo_config=algo)
    q.process()
    onnx.save(q.model.model, str(dest))


class _quiet:
    """Keep onnxruntime.quantization's logging out of the user's terminal, and its setup.

    ``matmul_nbits_quantizer`` calls ``logging.basicConfig(level=INFO)`` when imported
    (a root handler and level set behind the caller's back) and logs every node; both
    are undone here, and its loggers are held at ERROR for the call.
    """

    _LOGGERS = ("onnxruntime.quantization", "onnxruntime.quantization.matmul_nbits_quantizer")

    def __enter__(self) -> None:
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        import onnxruntime.quantization.matmul_nbits_quantizer  # noqa: F401  (its basicConfig)

        root.handlers[:] = handlers
        root.setLevel(level)
        self._levels = {n: logging.getLogger(n).level for n in self._LOGGERS}
        self._root = root.level
        for n in self._LOGGERS:
            logging.getLogger(n).setLevel(logging.ERROR)
        root.setLevel(logging.ERROR)  # quantize_dynamic logs its advice on the root logger
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc) -> None:
        self._w.__exit__(*exc)
        for n, level in self._levels.items():
            logging.getLogger(n).setLevel(level)
        logging.getLogger().setLevel(self._root)


def export_quantized(
    model: nn.Module,
    input_spec: InputSpec,
    path: str | Path,
    config: OrtQuantConfig,
    *,
    opset: int = DEFAULT_OPSET,
    atol: float | None = None,
) -> OrtQuantResult:
    """Export ``model`` to FP32 ONNX, quantize it with ONNX Runtime, check it against eager.

    The FP32 file is exported and parity-checked as :func:`export_onnx` does, in a
    temporary folder beside ``path``, then removed. Every output of the quantized file must
    agree with eager FP32 within ``atol * max(1, |output|max)`` (default :data:`ATOL` of
    the mode); the error names the output that does not.

    Example:
        >>> # export_quantized(bert, InputSpec((1, 128), "int64", 30522), "bert.int4.onnx",
        >>> #                  OrtQuantConfig("int4"))
    """
    path = Path(path)
    tol = ATOL[config.mode] if atol is None else atol
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as d:
        fp32 = Path(d) / "fp32.onnx"
        export_onnx(model, input_spec, fp32, opset=opset)
        with atomic_path(path) as tmp:  # a file that fails parity never reaches ``path``
            try:
                res = quantize_onnx(fp32, tmp, config)
            except EdgeslimError as e:  # name the model, not the temporary file
                raise EdgeslimError(str(e).replace(str(fp32), "the model's FP32 export")) from None
            try:
                diffs = output_parity(model, input_spec, tmp, tol)
            except EdgeslimError as e:
                raise EdgeslimError(f"{config.mode} quantization against eager FP32: {e}") from None
    return replace(res, path=path, output_diffs=diffs)
