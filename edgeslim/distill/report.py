"""The distillation report: one ``stages`` record per teacher, then the student.

Each model is exported to ONNX (parity-checked) and timed on ONNX Runtime, all
models interleaved in one loop (:func:`edgeslim.bench.latency.measure`), so the
teacher/student latency ratio survives a noisy machine. The records follow
:mod:`edgeslim.bench.stages`, the schema every edgeslim report shares.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from edgeslim.bench.latency import measure, onnx_target
from edgeslim.bench.macs import count_macs, count_params, zero_fraction
from edgeslim.bench.size import onnx_bytes
from edgeslim.bench.stages import stage_record
from edgeslim.export.onnx import export_onnx
from edgeslim.models.spec import LoadedModel


def stage_records(
    models: Sequence[tuple[str, LoadedModel, float | None]],
    *,
    batches: tuple[int, ...] = (1, 8),
    runs: int = 30,
    onnx_dir: str | Path | None = None,
    progress: bool = True,
) -> list[dict]:
    """``stages`` records for ``(name, model, test top-1)`` triples, in the given order.

    Args:
        models: teachers first, the student last, by convention.
        batches: batch sizes timed (latency keys are their strings: ``"1"``, ``"8"``).
        runs: timed runs per model and batch.
        onnx_dir: keep the exported files here (``<name>.onnx``); default a temp dir.

    Example:
        >>> # stages = stage_records([("teacher", t, 0.93), ("student", s, 0.90)])
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(onnx_dir or tmp)
        out.mkdir(parents=True, exist_ok=True)
        targets, infos = [], []
        for i, (name, lm, acc) in enumerate(models):
            spec = lm.require_input()
            path = out / f"{i}_{_safe(name)}.onnx"
            exp = export_onnx(lm.model, spec, path)
            targets.append(onnx_target(exp.path, f"{i}:{name}", spec))
            infos.append((name, lm, acc, exp))
        rep = measure(targets, batches, runs=runs, progress=progress)
        stages = []
        for i, (name, lm, acc, exp) in enumerate(infos):
            spec = lm.require_input()
            rec = stage_record(
                name,
                f"{i}:{name}",
                rep,
                runtime="onnxruntime",
                params=count_params(lm.model),
                macs=count_macs(lm.model, spec.example())[0],
                size_bytes=onnx_bytes(exp.path),
                sparsity=zero_fraction(lm.model),
                accuracy=acc,
            )
            rec["onnx_max_abs_diff"] = exp.max_abs_diff
            stages.append(rec)
        return stages


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
