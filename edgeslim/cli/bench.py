"""``edgeslim bench``: latency (median, p90) with warm-up; ``--vs`` times two models interleaved."""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from pathlib import Path

from edgeslim.cli.common import add_model_args, batches_arg, model_from_args, write_json
from edgeslim.core.errors import EdgeslimError

HELP = "measure latency; --vs B times A and B interleaved and reports A/B"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--vs", default=None, help="second model (spec or .onnx), timed interleaved")
    p.add_argument("--runtime", default="onnxruntime", choices=("torch", "onnxruntime"))
    p.add_argument("--batch", type=batches_arg, default=(1, 8), help="batch sizes, e.g. 1,8")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads")
    p.add_argument("--runs", type=int, default=30, help="timed runs per model and batch")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", default=None)


def make_target(spec: str, args: argparse.Namespace, workdir: Path, tag: str):
    """A latency target for ``spec``: ONNX files run on ONNX Runtime; models on ``--runtime``."""
    from edgeslim.bench.latency import onnx_target, torch_target
    from edgeslim.export.onnx import export_onnx

    if spec.endswith(".onnx"):
        if args.runtime == "torch":
            raise EdgeslimError(
                f"{spec} is an ONNX file; it can only run with --runtime onnxruntime"
            )
        if not Path(spec).is_file():
            raise EdgeslimError(f"ONNX model not found: {spec}")
        return onnx_target(spec, spec)
    lm = model_from_args(args, spec)
    inp = lm.require_input()
    if args.runtime == "torch":
        return torch_target(lm.model, inp, spec)
    onnx_path = workdir / f"{tag}.onnx"
    export_onnx(lm.model, inp, onnx_path)
    return onnx_target(onnx_path, spec, inp)


def run(args: argparse.Namespace) -> int:
    from edgeslim.bench.latency import measure

    with tempfile.TemporaryDirectory() as d:
        targets = [make_target(args.model, args, Path(d), "a")]
        if args.vs:
            targets.append(make_target(args.vs, args, Path(d), "b"))
        if len(targets) == 2 and targets[0].label == targets[1].label:
            targets[1] = dataclasses.replace(targets[1], label=targets[1].label + " (B)")
        rep = measure(targets, args.batch, runs=args.runs, warmup=args.warmup, threads=args.threads)
    print(f"{'model':<40} {'runtime':<12} {'batch':>5} {'median ms':>10} {'p90 ms':>9}")
    for r in rep.results:
        print(
            f"{r['model'][:40]:<40} {r['runtime']:<12} {r['batch']:>5} "
            f"{r['median_ms']:>10.3f} {r['p90_ms']:>9.3f}"
        )
    for b, ratio in rep.ratio.items():
        print(
            f"batch {b}: A/B latency ratio {ratio:.3f} (B is {ratio:.2f}x faster)"
            if ratio >= 1
            else f"batch {b}: A/B latency ratio {ratio:.3f} (A is {1 / ratio:.2f}x faster)"
        )
    if args.json:
        out = rep.to_dict()
        out["threads"] = args.threads
        write_json(args.json, out)
    return 0
