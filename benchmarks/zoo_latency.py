"""Zoo latency: eager PyTorch vs ONNX Runtime (FP32), timed interleaved in one run.

Writes ``benchmarks/results/zoo_latency.json`` and ``.md``. Run:

    python benchmarks/zoo_latency.py [--models resnet18,resnet50,...] [--runs 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from edgeslim.bench.latency import measure, onnx_target, torch_target
from edgeslim.bench.macs import count_macs, count_params
from edgeslim.export.onnx import export_onnx
from edgeslim.models.spec import load_model

OUT = Path(__file__).parent / "results"
DEFAULT = (
    "resnet18,resnet50,mobilenet_v2,vgg16_bn,resnet20,resnet56,mobilenet_v2_cifar,vgg16_bn_cifar"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default=DEFAULT)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    rows = []
    for name in args.models.split(","):
        lm = load_model(name)
        with tempfile.TemporaryDirectory() as d:
            exp = export_onnx(lm.model, lm.input, Path(d) / "m.onnx")
            targets = [
                torch_target(lm.model, lm.input, "torch"),
                onnx_target(exp.path, "ort", lm.input),
            ]
            rep = measure(targets, (1, 8), runs=args.runs, threads=args.threads)
        row = {
            "model": name,
            "input": list(lm.input.shape),
            "params": count_params(lm.model),
            "macs": count_macs(lm.model, lm.input.example())[0],
            "parity": exp.max_abs_diff,
        }
        for b in (1, 8):
            row[f"torch_b{b}_ms"] = rep.median("torch", b)
            row[f"ort_b{b}_ms"] = rep.median("ort", b)
            row[f"speedup_b{b}"] = rep.ratio[str(b)]
        rows.append(row)
        print(row)
    OUT.mkdir(exist_ok=True)
    (OUT / "zoo_latency.json").write_text(
        json.dumps({"threads": args.threads, "rows": rows}, indent=2)
    )
    lines = [
        "| model | input | params | GMACs | torch b1 ms | ORT b1 ms | torch b8 ms | ORT b8 ms "
        "| ORT speedup b1 / b8 | parity |",
        "|" + "---|" * 10,
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {'x'.join(map(str, r['input'][1:]))} | {r['params'] / 1e6:.2f}M "
            f"| {r['macs'] / 1e9:.3f} | {r['torch_b1_ms']:.2f} | {r['ort_b1_ms']:.2f} "
            f"| {r['torch_b8_ms']:.2f} | {r['ort_b8_ms']:.2f} "
            f"| {r['speedup_b1']:.2f}x / {r['speedup_b8']:.2f}x | {r['parity']:.1e} |"
        )
    (OUT / "zoo_latency.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
