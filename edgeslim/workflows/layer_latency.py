"""Each layer's time at each bit-width, measured on ONNX Runtime: the latency costs of HAWQ's ILP.

A layer is exported alone at the input shape it really sees (forward hooks on the
model's example input, :func:`edgeslim.workflows.lowrank_measured.input_shapes`),
twice: FP32, and INT8 QDQ (edgeslim's PTQ of that layer, 8-bit activations). The
two files are timed interleaved (:func:`edgeslim.bench.latency.measure`); the
median is kept. What a bit-width costs is what the runtime runs for it:

* float (32): the FP32 layer;
* 8 bits and fewer: the INT8 layer. ONNX Runtime has no int4 convolution kernel on
  CPU (ORT #25631): 4-bit weights are stored as int8 codes and run in the INT8
  kernel, so they buy size and accuracy trades, never time over 8 bits.

Timings are cached per layer structure, input shape, runtime, CPU and threads under
``cache_dir("bit_latency")``. Layers are timed alone, without the activation ORT
fuses into them or the QuantizeLinear an INT8 neighbour would share, so the sum is
an estimate of the model's time, which the caller states.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from edgeslim.bench.latency import measure, onnx_target
from edgeslim.bench.staircase import cpu_model, effective_threads, runtime_name
from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.methods import apply
from edgeslim.core.paths import cache_dir
from edgeslim.models.inputs import InputSpec
from edgeslim.quant.config import PTQConfig
from edgeslim.quant.mixed.sensitivity import FLOAT_BITS
from edgeslim.quant.qdq import export_qdq
from edgeslim.workflows.lowrank_measured import Shape, _export_fixed, _structure, input_shapes


def fp32_int8_ms(
    layer: nn.Module, shape: Shape, *, runs: int = 20, threads: int | None = None
) -> tuple[float, float]:
    """Median ms of ``layer`` alone on FP32 and INT8 QDQ ONNX Runtime, timed interleaved."""
    layer = copy.deepcopy(layer).to("cpu", torch.float32).eval()
    g = torch.Generator().manual_seed(0)
    calib = [torch.randn(shape, generator=g) for _ in range(2)]
    qmodel, _ = apply(nn.Sequential(layer), PTQConfig(), calib=calib)
    with tempfile.TemporaryDirectory() as d:
        fp32 = _export_fixed(layer, shape, Path(d) / "fp32.onnx")
        int8 = export_qdq(qmodel, InputSpec(shape), Path(d) / "int8.onnx", atol=None).path
        rep = measure(
            [onnx_target(fp32, "fp32"), onnx_target(int8, "int8")],
            (shape[0],),
            runs=runs,
            warmup=3,
            threads=threads,
            progress=False,
        )
    return rep.median("fp32", shape[0]), rep.median("int8", shape[0])


def _key(layer: nn.Module, shape: Shape, runs: int, threads: int | None) -> str:
    raw = json.dumps(
        [
            _structure(layer),
            list(shape),
            runtime_name(),
            cpu_model(),
            effective_threads(threads),
            runs,
        ]  # fmt: skip
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def bit_latencies(
    model: nn.Module,
    example: torch.Tensor,
    names: Sequence[str],
    choices: Sequence[int],
    *,
    runs: int = 20,
    threads: int | None = None,
    cache: bool = True,
) -> dict[str, dict[int, float]]:
    """``{layer: {bits: ms}}`` for every layer in ``names`` (see the module docstring)."""
    shapes = input_shapes(model, example, list(names))
    out: dict[str, dict[int, float]] = {}
    for name in names:
        layer = model.get_submodule(name)
        path = cache_dir("bit_latency") / f"{_key(layer, shapes[name], runs, threads)}.json"
        hit = None
        if cache:
            try:
                hit = json.loads(path.read_text())
                f_ms, q_ms = float(hit["fp32_ms"]), float(hit["int8_ms"])
            except (OSError, ValueError, KeyError, TypeError):
                hit = None
        if hit is None:
            f_ms, q_ms = fp32_int8_ms(layer, shapes[name], runs=runs, threads=threads)
            if cache:
                write_text_atomic(path, json.dumps({"fp32_ms": f_ms, "int8_ms": q_ms}) + "\n")
        out[name] = {b: (f_ms if b == FLOAT_BITS else q_ms) for b in choices}
    return out
