"""The distillation report: one ``stages`` record per teacher, then the student.

Each model is exported to ONNX (parity-checked) and timed on ONNX Runtime, all
models interleaved in one loop (:func:`edgeslim.workflows.measure.measure_stages`),
so the teacher/student latency ratio survives a noisy machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgeslim.models.spec import LoadedModel
from edgeslim.workflows.measure import Stage, measure_stages


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
    out = Path(onnx_dir) if onnx_dir else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    stages = [
        Stage(
            name,
            lm.model,
            lm.require_input(),
            accuracy=acc,
            export_to=out / f"{i}_{_safe(name)}.onnx" if out is not None else None,
        )
        for i, (name, lm, acc) in enumerate(models)
    ]
    return measure_stages(stages, batches=batches, runs=runs, progress=progress)[0]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
