"""Low-rank factorizations at a MAC target: MACs, parameters and ORT FP32 latency, dense vs each.

Each method (``edgeslim.lowrank``) factorizes the model to ``--macs`` of its MACs
(the per-layer ratio bisected, :mod:`edgeslim.lowrank.target`); every model is
exported to ONNX and all are timed on ONNX Runtime FP32 in ONE interleaved loop
(:func:`edgeslim.bench.latency.measure`), so the speedups hold on a noisy machine.
No fine-tuning: this measures speed, not accuracy. Writes
``benchmarks/results/lowrank_<model>.json`` and ``.md`` with the CPU model. Run:

    python benchmarks/lowrank.py [--model resnet18] [--methods tucker2,spatial,dws] \\
        [--macs 0.5] [--runs 20] [--threads 2]

CP (ALS on every 3x3 kernel) takes minutes on ResNet-18: add it with ``--methods cp``.

The rank search (``decompose --search``: per-layer ranks by the MILP over measured ORT
latency and damage) against channel pruning, speed and accuracy, is
``benchmarks/lowrank_search.py``; run it through this script with
``--search speed|accuracy|report [its options]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from edgeslim.bench.latency import measure, onnx_target
from edgeslim.bench.machine import machine_info, machine_line
from edgeslim.bench.macs import count_macs, count_params
from edgeslim.export.onnx import export_onnx
from edgeslim.lowrank import RankRule, config_for
from edgeslim.models.spec import load_model
from edgeslim.workflows.decompose import decompose

OUT = Path(__file__).parent / "results"


def main() -> None:
    import sys

    if len(sys.argv) > 2 and sys.argv[1] == "--search":
        sys.path.insert(0, str(Path(__file__).parent))
        from lowrank_search import main as search_main

        search_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--methods", default="tucker2,spatial,dws")
    ap.add_argument("--macs", type=float, default=0.5, help="fraction of the input's MACs")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    batches = tuple(int(b) for b in args.batches.split(","))
    lm = load_model(args.model)
    x = lm.input.example()
    models = {"dense": (lm.model, {})}
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        new, info = decompose(lm, config_for(method, RankRule(ratio=1.0)), target_macs=args.macs)
        models[method] = (
            new.model,
            {
                "ratio": info["search"]["ratio"],
                "layers": len(info["layers"]),
                "skipped": len(info["skipped"]),
                "factorize_s": round(time.perf_counter() - t0, 2),
            },
        )
        print(method, models[method][1])
    rows = []
    with tempfile.TemporaryDirectory() as d:
        targets = []
        for name, (model, extra) in models.items():
            exp = export_onnx(model, lm.input, Path(d) / f"{name}.onnx")
            targets.append(onnx_target(exp.path, name, lm.input))
            rows.append(
                {
                    "method": name,
                    "params": count_params(model),
                    "macs": count_macs(model, x)[0],
                    "parity": exp.max_abs_diff,
                    **extra,
                }
            )
        rep = measure(targets, batches, runs=args.runs, threads=args.threads)
    for row in rows:
        for b in batches:
            row[f"ort_b{b}_ms"] = rep.median(row["method"], b)
            row[f"speedup_b{b}"] = rep.median("dense", b) / row[f"ort_b{b}_ms"]
    machine = {**machine_info(args.threads), "load_average_1m": os.getloadavg()[0]}
    result = {
        "model": args.model,
        "input": list(lm.input.shape),
        "macs_target": args.macs,
        "runs": args.runs,
        "machine": machine,
        "rows": rows,
    }
    OUT.mkdir(exist_ok=True)
    stem = OUT / f"lowrank_{args.model}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    dense_macs = rows[0]["macs"]
    head = " | ".join(f"ORT b{b} ms | speedup b{b}" for b in batches)
    lines = [
        f"# {args.model} factorized to {args.macs:.0%} of its MACs (no fine-tuning)",
        "",
        machine_line(machine),
        f"Load average (1 min) at the end: {machine['load_average_1m']:.1f} "
        f"(other jobs share this CPU: compare rows within one run, not across runs).",
        "",
        f"| method | params | MACs (fraction) | {head} | ONNX parity |",
        "|" + "---|" * (4 + 2 * len(batches)),
    ]
    for r in rows:
        times = " | ".join(f"{r[f'ort_b{b}_ms']:.2f} | {r[f'speedup_b{b}']:.2f}x" for b in batches)
        lines.append(
            f"| {r['method']} | {r['params'] / 1e6:.2f}M "
            f"| {r['macs'] / 1e9:.3f}G ({r['macs'] / dense_macs:.2f}) | {times} "
            f"| {r['parity']:.1e} |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
