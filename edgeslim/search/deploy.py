"""Candidates deployed and timed the way the final model will run.

A budget on FP32 latency means nothing when INT8 quantization follows: INT8
kernels, the QDQ boundaries and the layers kept in float change what a channel
costs. So with ``int8`` every candidate is post-training quantized (with the
quantize stage's own settings and excluded layers) and written as the same ONNX
QDQ file the pipeline will ship; timing only depends on the graph, so one
calibration batch and min-max observers suffice. All files are timed in one interleaved loop
(:func:`edgeslim.bench.latency.measure`), so a burst of load on a shared machine
hits every candidate alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from edgeslim.bench.latency import measure, onnx_target
from edgeslim.bench.size import onnx_bytes
from edgeslim.models.inputs import InputSpec
from edgeslim.quant.config import PTQConfig


@dataclass(frozen=True)
class Deployment:
    """How the deployed model runs: FP32 or INT8 QDQ on ONNX Runtime, at which batch."""

    spec: InputSpec
    int8: bool
    ptq: PTQConfig  # the quantize stage's configuration (its ``exclude`` included)
    calib: tuple[torch.Tensor, ...]  # calibration inputs for INT8 candidates
    batch: int = 8
    threads: int | None = None
    runs: int = 20
    runtime: str = "onnxruntime"  # an ONNX runtime of edgeslim.export.runtimes

    def export(
        self,
        model: nn.Module,
        path: Path,
        float_layers: tuple[str, ...] = (),
        low_bits: tuple[tuple[str, int], ...] = (),
    ) -> Path:
        """Write ``model`` as deployed (INT8 QDQ with ``float_layers`` kept in float, or FP32).

        ``low_bits``: ``(layer, bits)`` whose weights take fewer bits; those of 4 bits or
        fewer are stored packed as INT4 (opset 21), as the quantize stage writes them.
        """
        if not self.int8:
            from edgeslim.export.onnx import export_onnx

            return export_onnx(model, self.spec, path).path
        from edgeslim.quant.ptq import quantize_ptq
        from edgeslim.quant.qdq import export_qdq

        # observers, bias correction and bit allocation change values, not the graph
        act, w = self.ptq.activation, self.ptq.weight
        cfg = replace(
            self.ptq,
            weight=w.with_(observer="minmax", observer_args=()) if w else None,
            activation=act.with_(observer="minmax", observer_args=()) if act else None,
            exclude=self.ptq.exclude + tuple(float_layers),
            calib_batches=len(self.calib),
            bias_correction=False,
        )
        if low_bits and w is not None:
            low = tuple(
                (name, w.with_(bits=b, observer="minmax", observer_args=())) for name, b in low_bits
            )
            cfg = replace(cfg, overrides=(*low, *cfg.overrides))
        qm = quantize_ptq(model, list(self.calib), cfg, progress=False)
        out = export_qdq(qm.model, self.spec, path).path
        if any(b <= 4 for _, b in low_bits):
            from edgeslim.quant.qat.pack import int4_weights

            int4_weights(out, out)
        return out

    def time(self, files: dict[str, Path], progress: bool = False) -> dict[str, float]:
        """Latency (ms) on ``runtime`` at ``batch`` of every file, timed interleaved.

        Two interleaved passes, the second in reverse order (a file late in a long round
        runs with colder caches); each file gets the mean of its two medians.
        """
        total = dict.fromkeys(files, 0.0)
        for labels in (list(files), list(files)[::-1]):
            targets = [onnx_target(files[k], k, self.spec, runtime=self.runtime) for k in labels]
            rep = measure(
                targets, (self.batch,), runs=self.runs, threads=self.threads, progress=progress
            )
            for k in labels:
                total[k] += rep.median(k, self.batch) / 2
        return total

    @staticmethod
    def size(path: Path) -> int:
        return onnx_bytes(path)
