"""The ``edgeslim quantize`` job: PTQ, QDQ export, and a measured before/after report.

Stages follow the shared ``stages`` schema (:mod:`edgeslim.bench.stages`): the
FP32 input first, the INT8 model last, both timed interleaved on ONNX Runtime,
both evaluated on ONNX Runtime when data is given. The report also carries the
fake-quant simulation's accuracy and its agreement with ONNX Runtime by the task's
measure (top-1, pixels, or confident boxes of the same class for detectors).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from edgeslim.bench.accuracy import (
    compare,
    evaluate_model,
    onnx_predict,
    primary_value,
    torch_predict,
)
from edgeslim.bench.machine import machine_info, machine_line
from edgeslim.bench.stages import format_stages
from edgeslim.core.atomic import write_text_atomic
from edgeslim.data import dataset_info, load_dataset, make_loader
from edgeslim.models.spec import LoadedModel
from edgeslim.quant.config import PTQConfig
from edgeslim.quant.ptq import quantize_ptq
from edgeslim.quant.qdq import export_qdq
from edgeslim.sparsity import squash_loaded
from edgeslim.tasks import Task, get_task
from edgeslim.workflows.measure import Stage, measure_stages


def calibration_loader(data: str, batch_size: int = 32):
    """Shuffled training split of ``data`` (``random:C,H,W`` warns: latency work only)."""
    if data.startswith("random"):
        warnings.warn(
            f"calibrating on {data!r}: random noise gives meaningless activation ranges; "
            "use it for latency measurements only",
            stacklevel=2,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dataset's own warning was just given
        ds = load_dataset(data, "train")
    return make_loader(ds, batch_size, shuffle=True, seed=0)


def agreement(
    qmodel: torch.nn.Module, onnx_path: Path, loader, task: Task | str = "classification"
) -> float:
    """How often the simulation and ONNX Runtime predict alike, by the task's measure.

    Classification: the fraction of samples with the same top-1 class; segmentation: of
    pixels with the same class.
    """
    res = compare(torch_predict(qmodel), onnx_predict(onnx_path), loader, task, lossy=True)
    return res[get_task(task).parity.measure]


def run_quantize(
    lm: LoadedModel,
    cfg: PTQConfig,
    out_dir: str | Path,
    *,
    calib_data: str,
    eval_data: str | None = None,
    batches: tuple[int, ...] = (1, 8),
    runs: int = 30,
    threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Quantize ``lm``; write ``out_dir/model.onnx`` (INT8 QDQ) and ``report.json``.

    Example:
        >>> # run_quantize(load_model("resnet20"), PTQConfig(), "out", calib_data="signs")
    """
    spec = lm.require_input()
    out_dir = Path(out_dir)
    lm = squash_loaded(lm)  # sparsity masks: PTQ quantizes the zeros (its twins are plain)
    data = calib_loader_or_none(calib_data)
    qm = quantize_ptq(lm.model, data, cfg, progress, example=spec.example(batch=2))
    test = make_loader(load_dataset(eval_data, "test"), 256, shuffle=False) if eval_data else None
    task = get_task(dataset_info(eval_data).task if eval_data else "classification")
    int8 = export_qdq(qm.model, spec, out_dir / "model.onnx").path
    stages = [
        Stage("fp32", lm.model, spec),
        Stage("int8 (QDQ)", qm.float_model, spec, onnx=int8),
    ]
    records, rep = measure_stages(
        stages,
        batches=batches,
        runs=runs,
        threads=threads,
        loader=test,
        task=task,
        progress=progress,
    )
    extra: dict = {}
    if test is not None:
        extra = {
            f"fp32_torch_{task.primary}": primary_value(evaluate_model(lm.model, test, task)),
            f"int8_simulated_{task.primary}": primary_value(evaluate_model(qm.model, test, task)),
            # the task's measure: top-1 (classification), pixels (segmentation), confident
            # boxes of the same class (detection)
            f"simulation_vs_ort_{task.parity.measure}": agreement(qm.model, int8, test, task),
        }
    report = {
        "model": lm.name,
        "input_shape": list(spec.shape),
        "calib_data": calib_data,
        "eval_data": eval_data,
        "config": json.loads(json.dumps(asdict(cfg), default=str)),
        "graph_mode": qm.graph_mode,
        "machine": machine_info(threads),
        "quantized_layers": qm.layers(),
        "stages": records,
        "speedup": rep.ratio,
        **extra,
    }
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    report["text"] = (
        format_stages(records)
        + "\n"
        + machine_line(report["machine"])
        + (
            "\nweights coded in 7 of their 8 bits (--reduce-range): without VNNI, this CPU's "
            "u8 x s8 kernels saturate full-range 8-bit weights"
            if cfg.reduce_range and cfg.weight is not None and cfg.weight.bits == 8
            else ""
        )
    )
    return report


def calib_loader_or_none(data: str | None):
    return calibration_loader(data) if data else None
