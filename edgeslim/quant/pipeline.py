"""The ``edgeslim quantize`` job: PTQ, QDQ export, and a measured before/after report.

Stages follow the shared ``stages`` schema (:mod:`edgeslim.bench.stages`): the
FP32 input first, the INT8 model last, both timed interleaved on ONNX Runtime,
both evaluated on ONNX Runtime when data is given. The report also carries the
fake-quant simulation's accuracy and its top-1 agreement with ONNX Runtime.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from edgeslim.bench.accuracy import evaluate_model, evaluate_onnx
from edgeslim.bench.latency import measure, onnx_target
from edgeslim.bench.macs import count_macs, count_params
from edgeslim.bench.size import onnx_bytes
from edgeslim.bench.stages import format_stages, stage_record
from edgeslim.core.atomic import write_text_atomic
from edgeslim.data import load_dataset, make_loader
from edgeslim.export.onnx import export_onnx
from edgeslim.export.ort import ort_run, ort_session
from edgeslim.export.qdq import export_qdq
from edgeslim.models.spec import LoadedModel
from edgeslim.quant.config import PTQConfig
from edgeslim.quant.ptq import quantize_ptq


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


def agreement(qmodel: torch.nn.Module, onnx_path: Path, loader) -> float:
    """Fraction of samples where the simulation and ONNX Runtime pick the same class."""
    sess = ort_session(onnx_path)
    same = n = 0
    with torch.no_grad():
        for x, _ in loader:
            a = qmodel(x).argmax(1).numpy()
            b = np.asarray(ort_run(sess, x.numpy())).argmax(1)
            same += int((a == b).sum())
            n += len(x)
    return same / max(n, 1)


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
    data = calib_loader_or_none(calib_data)
    qm = quantize_ptq(lm.model, data, cfg, progress, example=spec.example(batch=2))
    test = make_loader(load_dataset(eval_data, "test"), 256, shuffle=False) if eval_data else None
    example = spec.example(batch=1)
    with tempfile.TemporaryDirectory() as d:
        fp32 = export_onnx(lm.model, spec, Path(d) / "fp32.onnx").path
        int8 = export_qdq(qm.model, spec, out_dir / "model.onnx").path
        rep = measure(
            [onnx_target(fp32, "fp32", spec), onnx_target(int8, "int8", spec)],
            batches,
            runs=runs,
            threads=threads,
            progress=progress,
        )
        acc = {"fp32": None, "int8": None}
        extra: dict = {}
        if test is not None:
            acc = {
                "fp32": evaluate_onnx(fp32, test)["top1"],
                "int8": evaluate_onnx(int8, test)["top1"],
            }
            extra = {
                "fp32_torch_top1": evaluate_model(lm.model, test)["top1"],
                "int8_simulated_top1": evaluate_model(qm.model, test)["top1"],
                "simulation_vs_ort_top1_agreement": agreement(qm.model, int8, test),
            }
        records = [
            stage_record(
                "fp32",
                "fp32",
                rep,
                runtime="onnxruntime",
                params=count_params(lm.model),
                macs=count_macs(lm.model, example)[0],
                size_bytes=onnx_bytes(fp32),
                accuracy=acc["fp32"],
            ),
            stage_record(
                "int8 (QDQ)",
                "int8",
                rep,
                runtime="onnxruntime",
                params=count_params(qm.float_model),
                macs=count_macs(qm.float_model, example)[0],
                size_bytes=onnx_bytes(int8),
                accuracy=acc["int8"],
            ),
        ]
    report = {
        "model": lm.name,
        "input_shape": list(spec.shape),
        "calib_data": calib_data,
        "eval_data": eval_data,
        "config": json.loads(json.dumps(asdict(cfg), default=str)),
        "graph_mode": qm.graph_mode,
        "quantized_layers": qm.layers(),
        "stages": records,
        "speedup": rep.ratio,
        **extra,
    }
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    report["text"] = format_stages(records)
    return report


def calib_loader_or_none(data: str | None):
    return calibration_loader(data) if data else None
