"""ResNet-18 at 224, 50% of channels removed: ONNX Runtime FP32 speedup, edgeslim vs
Torch-Pruning 1.6.1 at equal MACs, all timed interleaved in one run.

Torch-Pruning is installed for this benchmark only (``pip install torch-pruning==1.6.1``);
it is not an edgeslim dependency.

    python benchmarks/pruning_speed.py [--runs 30] [--threads 2]

Writes benchmarks/results/pruning_speed.json and prints a markdown table; the issue's
``edgeslim bench --vs`` check is run too (subprocess) and its output is stored.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from edgeslim.bench.latency import measure, onnx_target
from edgeslim.bench.macs import count_macs, count_params
from edgeslim.bench.size import onnx_bytes
from edgeslim.export.onnx import export_onnx
from edgeslim.models import build_zoo_model
from edgeslim.models.inputs import InputSpec
from edgeslim.models.saved import save_model
from edgeslim.models.spec import load_model
from edgeslim.prune import PruneConfig, prune

RESULTS = Path(__file__).parent / "results"


def torch_pruning_l1(model: torch.nn.Module, example: torch.Tensor, ratio: float):
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=ratio,
        ignored_layers=[model.fc],
    )
    pruner.step()
    return model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--out", default="pruning_speed.json", help="file name under results/")
    args = ap.parse_args()
    import torch_pruning as tp

    spec = InputSpec((1, 3, 224, 224))
    x = spec.example()
    dense = build_zoo_model("resnet18").eval()
    t0 = time.perf_counter()
    ours = prune(dense, x, PruneConfig(ratio=args.ratio, criterion="l1"))
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs = torch_pruning_l1(dense, x, args.ratio)
    t_tp = time.perf_counter() - t0
    macs = {
        k: count_macs(m, x)[0]
        for k, m in (("dense", dense), ("edgeslim", ours.model), ("torch-pruning", theirs))
    }
    # equal MACs: also prune edgeslim to exactly Torch-Pruning's MACs
    eq = prune(dense, x, PruneConfig(target_macs=macs["torch-pruning"], criterion="l1"))
    macs["edgeslim@tp-macs"] = count_macs(eq.model, x)[0]
    models = {
        "dense": dense,
        "edgeslim": ours.model,
        "edgeslim@tp-macs": eq.model,
        "torch-pruning": theirs,
    }
    with tempfile.TemporaryDirectory() as d:
        paths = {k: export_onnx(m, spec, Path(d) / f"{k}.onnx").path for k, m in models.items()}
        rep = measure(
            [onnx_target(p, k, spec) for k, p in paths.items()],
            (1, 8),
            runs=args.runs,
            threads=args.threads,
        )
        sizes = {k: onnx_bytes(p) for k, p in paths.items()}
        # the check: `edgeslim bench dense --vs pruned` on ONNX Runtime
        pruned_dir = Path(d) / "r18-pruned"
        lm = load_model("resnet18")
        lm.model = ours.model
        save_model(lm, pruned_dir)
        cmd = [
            "edgeslim",
            "bench",
            "resnet18",
            "--vs",
            str(pruned_dir),
            "--runtime",
            "onnxruntime",
            "--batch",
            "1,8",
            "--runs",
            str(args.runs),
            "--threads",
            str(args.threads),
            "--json",
            str(Path(d) / "vs.json"),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        vs = json.loads((Path(d) / "vs.json").read_text())
    rows = []
    for k in models:
        b1, b8 = rep.median(k, 1), rep.median(k, 8)
        rows.append(
            {
                "model": k,
                "params": count_params(models[k]),
                "macs": macs[k],
                "onnx_bytes": sizes[k],
                "b1_ms": b1,
                "b8_ms": b8,
                "speedup_b1": rep.median("dense", 1) / b1,
                "speedup_b8": rep.median("dense", 8) / b8,
            }
        )
    out = {
        "setting": f"ResNet-18, 1x3x224x224, {args.ratio:.0%} channels, L1, ONNX Runtime FP32, "
        f"{args.threads} threads, {args.runs} interleaved runs",
        "torch_pruning_version": tp.__version__,
        "prune_seconds": {"edgeslim": t_ours, "torch-pruning": t_tp},
        "rows": rows,
        "edgeslim_bench_vs": {
            "command": " ".join(cmd[:4] + ["OUT"] + cmd[5:-2]),
            "ratio": vs["ratio"],
            "stdout": proc.stdout,
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(out["setting"])
    print("| model | params | GMACs | ONNX MB | b1 ms | b8 ms | speedup b1 | speedup b8 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e9:.3f} | "
            f"{r['onnx_bytes'] / 1e6:.1f} | {r['b1_ms']:.2f} | {r['b8_ms']:.2f} | "
            f"{r['speedup_b1']:.2f}x | {r['speedup_b8']:.2f}x |"
        )
    print("edgeslim bench --vs ratio:", vs["ratio"])
    sys.stdout.flush()


if __name__ == "__main__":
    main()
