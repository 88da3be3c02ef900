"""``edgeslim demo``: the main job on a built-in model and data.

Trains (or loads from the cache) a zoo model on built-in data, then measures it
before and after deployment to ONNX Runtime: accuracy, latency (interleaved),
size, parameters and MACs, written to ``OUT/report.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train (cached) a zoo model on built-in data, deploy to ONNX Runtime, measure both"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="edgeslim-demo", help="output directory")
    p.add_argument("--model", default="resnet20", help="zoo model to train")
    p.add_argument("--data", default="signs", help="built-in dataset")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--runs", type=int, default=30, help="timed runs per stage and batch")
    p.add_argument("--threads", type=int, default=None)


def run(args: argparse.Namespace) -> int:
    from edgeslim.bench.accuracy import evaluate_model, evaluate_onnx
    from edgeslim.bench.latency import measure, onnx_target, torch_target
    from edgeslim.bench.macs import count_macs, count_params, zero_fraction
    from edgeslim.bench.size import onnx_bytes, safetensors_bytes
    from edgeslim.bench.stages import format_stages, stage_record
    from edgeslim.cli.common import write_json
    from edgeslim.data import load_dataset, make_loader
    from edgeslim.export.onnx import export_onnx
    from edgeslim.models.saved import save_model
    from edgeslim.train.config import TrainConfig
    from edgeslim.workflows.train import pretrained

    out = Path(args.output)
    cfg = TrainConfig(epochs=args.epochs)
    print(f"[1/4] model: {args.model} trained on {args.data} ({args.epochs} epochs, cached)")
    lm = pretrained(args.model, args.data, cfg)
    save_model(lm, out / "model")
    test = make_loader(load_dataset(args.data, "test"), 256, shuffle=False)
    inp = lm.require_input()
    print("[2/4] export to ONNX with parity check")
    exp = export_onnx(lm.model, inp, out / "model.onnx")
    print(f"      max |ort - eager| = {exp.max_abs_diff:.2g}")
    print("[3/4] accuracy on the test split (eager and ONNX Runtime)")
    acc_torch = evaluate_model(lm.model, test)["top1"]
    acc_onnx = evaluate_onnx(exp.path, test)["top1"]
    print("[4/4] latency, eager vs ONNX Runtime, interleaved")
    targets = [torch_target(lm.model, inp, "eager"), onnx_target(exp.path, "onnx", inp)]
    rep = measure(targets, (1, 8), runs=args.runs, threads=args.threads)
    macs = count_macs(lm.model, inp.example())[0]
    common = {"params": count_params(lm.model), "macs": macs, "sparsity": zero_fraction(lm.model)}
    stages = [
        stage_record(
            "fp32 eager",
            "eager",
            rep,
            runtime="torch",
            accuracy=acc_torch,
            size_bytes=safetensors_bytes(lm.model),
            **common,
        ),
        stage_record(
            "fp32 onnxruntime",
            "onnx",
            rep,
            runtime="onnxruntime",
            accuracy=acc_onnx,
            size_bytes=onnx_bytes(exp.path),
            **common,
        ),
    ]
    write_json(
        out / "report.json",
        {
            "model": args.model,
            "data": args.data,
            "stages": stages,
            "onnx_max_abs_diff": exp.max_abs_diff,
        },
    )
    print(format_stages(stages))
    print(f"wrote {out}/report.json, {out}/model.onnx, {out}/model/")
    return 0
