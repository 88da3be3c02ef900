"""Measure model states side by side and record them: the one export -> time -> record loop.

Every job that reports a before/after (``prune``, ``quantize``, ``distill``, the
recipe runner) describes its model states as :class:`Stage` s and calls
:func:`measure_stages`. Each stage is exported to ONNX unless it already has a
deployed file (or is timed in eager PyTorch), all stages are timed in ONE
interleaved loop (:func:`edgeslim.bench.latency.measure`), so their ratios hold on
a noisy machine, and each gets a record in the shared ``stages`` schema
(:mod:`edgeslim.bench.stages`): parameters, MACs, sparsity, size on disk, latency
per batch and accuracy.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from torch import nn
from torch.utils.data import DataLoader

from edgeslim.bench.accuracy import (
    evaluate_model,
    evaluate_onnx,
    primary_value,
    runtime_predict,
    score,
)
from edgeslim.bench.latency import BenchReport, Target, measure, module_target, onnx_target
from edgeslim.bench.macs import count_macs, count_params, zero_fraction
from edgeslim.bench.size import onnx_bytes, safetensors_bytes
from edgeslim.bench.stages import stage_record
from edgeslim.export.onnx import export_onnx
from edgeslim.export.runtimes import file_precision, get_runtime
from edgeslim.models.inputs import InputSpec
from edgeslim.tasks import Task, get_task


@dataclass
class Stage:
    """One model state to measure.

    Attributes:
        name: the row's name in the report.
        model: the PyTorch model whose parameters, MACs and sparsity are counted (for
            an INT8 file, its float twin).
        spec: the input the model takes.
        onnx: the deployed file; ``None`` exports ``model`` (to ``export_to`` if set,
            else a temporary file) unless ``runtime`` is ``"torch"``.
        runtime: a registered runtime (:mod:`edgeslim.export.runtimes`): ``"onnxruntime"``,
            ``"openvino"`` (the ONNX file), ``"torch"`` or ``"torch_compile"`` (the
            module; size = safetensors bytes).
        precision: what the runtime runs a float model in (``"fp32"``, ``"bf16"``); a
            QDQ file runs INT8 whatever is asked.
        accuracy: a known accuracy; ``None`` evaluates on the loader, if one is given.
        evaluate: ``"runtime"`` evaluates what is timed (the ONNX file, or the eager
            model); ``"model"`` evaluates ``model`` in PyTorch.
        extra: more keys for the record.
    """

    name: str
    model: nn.Module
    spec: InputSpec
    onnx: Path | None = None
    runtime: str = "onnxruntime"
    precision: str = "fp32"
    accuracy: float | None = None
    evaluate: Literal["runtime", "model"] = "runtime"
    export_to: Path | None = None
    extra: dict = field(default_factory=dict)


def measure_stages(
    stages: Sequence[Stage],
    *,
    batches: tuple[int, ...] = (1, 8),
    runs: int = 30,
    threads: int | None = None,
    loader: DataLoader | None = None,
    task: Task | str = "classification",
    progress: bool = True,
) -> tuple[list[dict], BenchReport]:
    """Export, time (interleaved), evaluate and record every stage, in order.

    ``accuracy`` in each record is ``task``'s primary metric on ``loader`` (all of the
    task's metrics are under ``metrics``). Returns the stage records and the timing
    report (``report.ratio`` compares the first two targets).

    Example:
        >>> # recs, rep = measure_stages([Stage("fp32", m, spec), Stage("pruned", p, spec)])
    """
    with tempfile.TemporaryDirectory() as tmp:
        targets: list[Target] = []
        exported: list[tuple[Path | None, float | None]] = []
        for i, st in enumerate(stages):
            label = _label(i, st)
            if get_runtime(st.runtime).artifact == "module":
                targets.append(
                    module_target(
                        st.model, st.spec, label, runtime=st.runtime, precision=st.precision
                    )
                )
                exported.append((None, None))
                continue
            path, diff = st.onnx, None
            if path is None:
                res = export_onnx(st.model, st.spec, st.export_to or Path(tmp) / f"{i}.onnx")
                path, diff = res.path, res.max_abs_diff
            targets.append(
                onnx_target(path, label, st.spec, runtime=st.runtime, precision=st.precision)
            )
            exported.append((Path(path), diff))
        rep = measure(targets, batches, runs=runs, threads=threads, progress=progress)
        task = get_task(task)
        return [
            _record(i, st, path, diff, rep, loader, task)
            for i, (st, (path, diff)) in enumerate(zip(stages, exported, strict=True))
        ], rep


def _plain(st: Stage) -> bool:
    return st.runtime == "torch" and st.precision == "fp32"


def _precision(st: Stage, path: Path | None) -> str:
    """What the stage actually ran in: INT8 for a QDQ file, else the asked precision."""
    return (file_precision(path) if path is not None else None) or st.precision


def _label(i: int, st: Stage) -> str:
    return f"{i}:{st.name}"


def _record(
    i: int,
    st: Stage,
    path: Path | None,
    diff: float | None,
    rep: BenchReport,
    loader: DataLoader | None,
    task: Task,
) -> dict:
    acc, metrics = st.accuracy, None
    if acc is None and loader is not None:
        if st.evaluate == "model" or (path is None and _plain(st)):
            metrics = evaluate_model(st.model, loader, task)
        elif path is None:  # a module runtime other than plain eager fp32
            pred = runtime_predict(st.runtime, st.model, st.precision)
            metrics = score(pred, loader, task, desc=f"evaluate {st.runtime} {st.precision}")
        else:
            metrics = evaluate_onnx(path, loader, task, runtime=st.runtime, precision=st.precision)
        acc = primary_value(metrics)
    rec = stage_record(
        st.name,
        _label(i, st),
        rep,
        runtime=st.runtime,
        precision=_precision(st, path),
        params=count_params(st.model),
        macs=count_macs(st.model, st.spec.example(batch=1))[0],
        size_bytes=onnx_bytes(path) if path is not None else safetensors_bytes(st.model),
        sparsity=zero_fraction(st.model),
        accuracy=acc,
        metric=task.primary_metric.label,
    )
    if metrics is not None:
        rec["metrics"] = {k: metrics[k] for k in (m.name for m in task.metrics)}
    if diff is not None:
        rec["onnx_max_abs_diff"] = diff
    rec.update(st.extra)
    return rec
