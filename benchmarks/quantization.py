"""Quantization benchmarks: INT8 speed and size on ONNX Runtime, accuracy per calibrator.

Run (2 cores; each section can run alone, results merge into one file):

    nice -n 10 python benchmarks/quantization.py --section speed
    nice -n 10 python benchmarks/quantization.py --section resnet20   # ResNet-20, signs, 8 ep
    nice -n 10 python benchmarks/quantization.py --section mobilenet --epochs 12
    nice -n 10 python benchmarks/quantization.py --section bert

Writes ``benchmarks/results/quantization.json`` and ``quantization.md``.
``onnxruntime.quantization.quantize_static`` is the *baseline* here, never part
of edgeslim's product path.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgeslim.bench.accuracy import evaluate_model, evaluate_onnx
from edgeslim.bench.latency import measure, onnx_target
from edgeslim.bench.size import onnx_bytes
from edgeslim.data import load_dataset, make_loader
from edgeslim.export.onnx import export_onnx
from edgeslim.models.spec import load_model
from edgeslim.quant.config import PTQConfig, activation_spec, weight_spec
from edgeslim.quant.ptq import quantize_ptq
from edgeslim.quant.qdq import export_qdq
from edgeslim.workflows.quantize import agreement

RESULTS = Path(__file__).parent / "results"
CALIBRATORS = ("minmax", "ema_minmax", "percentile", "kl", "mse", "aciq", "aciq_gauss")


def ort_quantize_static(
    fp32: Path, dest: Path, batches: list[torch.Tensor], method: str = "MinMax"
) -> Path:
    """The baseline: ONNX Runtime's own static QDQ quantization on the same calibration data.

    ``method`` names an ``onnxruntime.quantization.CalibrationMethod`` (MinMax, Entropy,
    Percentile), each with ONNX Runtime's own defaults.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"input": b.numpy()} for b in batches])

        def get_next(self):
            return next(self.it, None)

    quantize_static(
        str(fp32),
        str(dest),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=getattr(CalibrationMethod, method),
    )
    return dest


def section_speed(runs: int) -> dict:
    lm = load_model("resnet18")
    spec = lm.input
    calib = [spec.example(batch=8, seed=i) for i in range(4)]
    qm = quantize_ptq(lm.model, calib, PTQConfig(calib_batches=4), progress=False)
    d = Path(tempfile.mkdtemp())
    fp32 = export_onnx(lm.model, spec, d / "fp32.onnx").path
    ours = export_qdq(qm.model, spec, d / "int8.onnx").path
    ort_q = ort_quantize_static(fp32, d / "ort_int8.onnx", calib)
    rep = measure(
        [
            onnx_target(fp32, "fp32", spec),
            onnx_target(ours, "edgeslim int8", spec),
            onnx_target(ort_q, "ort quantize_static int8", spec),
        ],
        (1, 8),
        runs=runs,
    )
    out = {"model": "resnet18", "input": list(spec.shape), "runs": runs, "latency": rep.results}
    for b in (1, 8):
        f = rep.median("fp32", b)
        out[f"speedup_b{b}"] = f / rep.median("edgeslim int8", b)
        out[f"ort_speedup_b{b}"] = f / rep.median("ort quantize_static int8", b)
    out["size_fp32"] = onnx_bytes(fp32)
    out["size_int8"] = onnx_bytes(ours)
    out["size_ort_int8"] = onnx_bytes(ort_q)
    out["size_ratio"] = out["size_fp32"] / out["size_int8"]
    return out


def _calib(data: str, n: int, bs: int = 64, seed: int = 0) -> list[torch.Tensor]:
    loader = make_loader(load_dataset(data, "train"), bs, shuffle=True, seed=seed)
    return [x for (x, _), _ in zip(loader, range(n), strict=False)]


# edgeslim calibrator -> the quantize_static calibration method that does the same job
VS_ORT = (("minmax", "MinMax"), ("kl", "Entropy"), ("percentile", "Percentile"))


def _deployed(lm, data: str, test, seed: int) -> dict:
    """edgeslim INT8 and ``quantize_static`` on the same 16 x 64 images, both run by ORT."""
    calib = _calib(data, 16, seed=seed)
    d = Path(tempfile.mkdtemp())
    fp32 = export_onnx(lm.model, lm.input, d / "fp32.onnx").path
    out: dict = {"calib_seed": seed}
    for ours, theirs in VS_ORT:
        cfg = PTQConfig(activation=activation_spec(8, ours), calib_batches=16)
        qm = quantize_ptq(lm.model, calib, cfg, progress=False)
        path = export_qdq(qm.model, lm.input, d / f"{ours}.onnx").path
        ort_q = ort_quantize_static(fp32, d / f"ort_{theirs}.onnx", calib, theirs)
        out[ours] = {
            "edgeslim_simulated_top1": evaluate_model(qm.model, test)["top1"],
            "edgeslim_ort_top1": evaluate_onnx(path, test)["top1"],
            f"quantize_static_{theirs}_top1": evaluate_onnx(ort_q, test)["top1"],
            "simulation_vs_ort_agreement": agreement(qm.model, path, test),
            "size_edgeslim": onnx_bytes(path),
            "size_quantize_static": onnx_bytes(ort_q),
        }
    return out


def section_accuracy(model: str = "resnet20", data: str = "signs", epochs: int = 8) -> dict:
    from edgeslim.train.config import TrainConfig
    from edgeslim.workflows.train import pretrained

    lm = pretrained(model, data, TrainConfig(epochs=epochs), progress=False)
    test = make_loader(load_dataset(data, "test"), 256, shuffle=False)
    calib = _calib(data, 16)
    fp = evaluate_model(lm.model, test)["top1"]
    out: dict = {
        "model": model,
        "data": data,
        "epochs": epochs,
        "fp32_top1": fp,
        "calib": f"{data} train, 16 x 64 images",
        "w8a8": {},
        "w4a8": {},
    }
    for m in CALIBRATORS:
        t = time.time()
        cfg = PTQConfig(activation=activation_spec(8, m), calib_batches=16)
        qm = quantize_ptq(lm.model, calib, cfg, progress=False)
        out["w8a8"][m] = {
            "top1": evaluate_model(qm.model, test)["top1"],
            "seconds": time.time() - t,
        }
        print(m, out["w8a8"][m], flush=True)
    # deploy the min-max model and compare with ORT's quantize_static on the same data;
    # one test flip is 0.05 points, so three calibration draws show the spread
    runs = []
    for seed in range(3):
        runs.append(_deployed(lm, data, test, seed))
        print(runs[-1], flush=True)
    out["deployed"] = {"runs": runs}
    for ours, theirs in VS_ORT:
        rows = [r[ours] for r in runs]
        out["deployed"][ours] = {
            "mean_edgeslim_ort_top1": float(np.mean([r["edgeslim_ort_top1"] for r in rows])),
            f"mean_quantize_static_{theirs}_top1": float(
                np.mean([r[f"quantize_static_{theirs}_top1"] for r in rows])
            ),
            "min_simulation_vs_ort_agreement": min(r["simulation_vs_ort_agreement"] for r in rows),
        }
    print(out["deployed"], flush=True)
    for name, wm, am, bc in [
        ("minmax", "minmax", "minmax", False),
        ("mse", "mse", "mse", False),
        ("mse+bc", "mse", "mse", True),
        ("aciq+bc", "aciq", "aciq", True),
        ("minmax+bc", "minmax", "minmax", True),
        ("percentile+bc", "mse", "percentile", True),
    ]:
        cfg = PTQConfig(
            weight=weight_spec(4, wm),
            activation=activation_spec(8, am),
            calib_batches=16,
            bias_correction=bc,
            bias_correction_batches=8,
        )
        qm = quantize_ptq(lm.model, calib, cfg, progress=False)
        out["w4a8"][name] = evaluate_model(qm.model, test)["top1"]
        print("w4a8", name, out["w4a8"][name], flush=True)
    return out


def section_mobilenet(epochs: int = 12) -> dict:
    """MobileNetV2 (depthwise): per-channel W8A8 per calibrator, per-tensor as the contrast."""
    from edgeslim.train.config import TrainConfig
    from edgeslim.workflows.train import pretrained

    cfg = TrainConfig(epochs=epochs, amp=True, channels_last=True)  # bf16: ~2x on this CPU
    lm = pretrained("mobilenet_v2_cifar", "signs", cfg, progress=True)
    test = make_loader(load_dataset("signs", "test"), 256, shuffle=False)
    calib = _calib("signs", 16)
    out = {"fp32_top1": evaluate_model(lm.model, test)["top1"], "epochs": epochs}
    print("fp32", out["fp32_top1"], flush=True)
    for m in ("minmax", "kl", "mse", "percentile"):  # the last one is deployed below
        qm = quantize_ptq(
            lm.model,
            calib,
            PTQConfig(activation=activation_spec(8, m), calib_batches=16),
            progress=False,
        )
        out[f"w8a8_{m}"] = evaluate_model(qm.model, test)["top1"]
        print(m, out[f"w8a8_{m}"], flush=True)
    per_tensor = quantize_ptq(
        lm.model,
        calib,
        PTQConfig(weight=weight_spec(8, per_channel=False), calib_batches=16),
        progress=False,
    )
    out["w8a8_minmax_per_tensor_weights"] = evaluate_model(per_tensor.model, test)["top1"]
    print("per-tensor", out["w8a8_minmax_per_tensor_weights"], flush=True)
    d = Path(tempfile.mkdtemp())
    ours = export_qdq(qm.model, lm.input, d / "int8.onnx").path
    out["deployed_ort_top1"] = evaluate_onnx(ours, test)["top1"]
    out["simulation_vs_ort_agreement"] = agreement(qm.model, ours, test)
    return out


def section_bert() -> dict:
    from edgeslim.models.hf import build_hf

    cfg = {
        "model_type": "bert",
        "vocab_size": 1000,
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 256,
        "num_labels": 4,
    }
    model = build_hf(cfg).eval()
    from edgeslim.models.inputs import InputSpec

    spec = InputSpec((1, 32), "int64", 1000)
    calib = [spec.example(batch=8, seed=i) for i in range(4)]
    qm = quantize_ptq(model, calib, PTQConfig(calib_batches=4), progress=False)
    d = Path(tempfile.mkdtemp())
    fp32 = export_onnx(model, spec, d / "fp32.onnx").path
    ours = export_qdq(qm.model, spec, d / "int8.onnx")
    x = spec.example(batch=16, seed=99)
    from edgeslim.export.ort import ort_run, ort_session

    got = ort_run(ort_session(ours.path), x.numpy())
    with torch.no_grad():
        sim = qm.model(x).numpy()
        ref = model(x).numpy()
    rep = measure(
        [onnx_target(fp32, "fp32", spec), onnx_target(ours.path, "int8", spec)], (1, 8), runs=20
    )
    return {
        "graph_mode": qm.graph_mode,
        "quantized_layers": len(qm.layers()),
        "size_fp32": onnx_bytes(fp32),
        "size_int8": ours.size_bytes,
        "max_abs_sim_vs_ort": float(np.abs(got - sim).max()),
        "max_abs_sim_vs_fp32": float(np.abs(sim - ref).max()),
        "argmax_agreement_sim_vs_ort": float((got.argmax(1) == sim.argmax(1)).mean()),
        "speedup": rep.ratio,
    }


def write(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quantization.json").write_text(json.dumps(results, indent=2, default=str) + "\n")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--section", choices=("speed", "accuracy", "resnet20", "mobilenet", "bert"), required=True
    )
    p.add_argument("--runs", type=int, default=40)
    p.add_argument("--model", default="resnet20", help="accuracy section: zoo model")
    p.add_argument("--data", default="signs", help="accuracy section: dataset")
    p.add_argument(
        "--epochs", type=int, default=None, help="accuracy/mobilenet: training epochs (8/12)"
    )
    args = p.parse_args()
    path = RESULTS / "quantization.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    fn = {
        "speed": lambda: section_speed(args.runs),
        "accuracy": lambda: section_accuracy(args.model, args.data, args.epochs or 8),
        "resnet20": lambda: section_accuracy("resnet20", "signs", 8),
        "mobilenet": lambda: section_mobilenet(args.epochs or 12),
        "bert": section_bert,
    }[args.section]
    t = time.time()
    res = fn()
    res["command"] = "nice -n 10 python benchmarks/quantization.py " + " ".join(sys.argv[1:])
    res["wall_seconds"] = time.time() - t
    key = args.section
    if key == "accuracy":
        key = f"accuracy_{args.model}_{args.data}_{args.epochs or 8}ep"
    if key == "resnet20":
        key = "accuracy_resnet20_signs_8ep"
    results[key] = res
    write(results)
    print(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
