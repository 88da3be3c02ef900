"""``edgeslim analyze``: parameters, MACs, per-layer table, sparsity and size."""

from __future__ import annotations

import argparse

from edgeslim.cli.common import add_model_args, model_from_args, write_json

HELP = "count parameters, MACs, zero weights and size on disk, per layer"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--json", default=None, help="write the full report to this JSON file")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX export used to size it")
    p.add_argument("--rows", type=int, default=40, help="max per-layer rows printed")
    p.add_argument(
        "--profile",
        action="store_true",
        help="also run the FP32 ONNX file under ONNX Runtime's profiler: time per node, the "
        "kernel ORT ran, its layout and the ops it fused, tied back to the modules",
    )
    p.add_argument("--batch", type=int, default=1, help="batch size for --profile")
    p.add_argument("--threads", type=int, default=None, help="threads for --profile")


def run(args: argparse.Namespace) -> int:
    from edgeslim.bench.analyze import analyze, format_analysis

    lm = model_from_args(args)
    report = analyze(lm, onnx=not args.no_onnx)
    print(format_analysis(report, args.rows))
    if args.profile:
        report["profile"] = _profile(lm, args)
    if args.json:
        write_json(args.json, report)
    return 0


def _profile(lm, args: argparse.Namespace) -> dict:
    import tempfile
    from pathlib import Path

    from edgeslim.bench.profile import format_profile, profile_onnx, to_json
    from edgeslim.export.onnx import export_onnx

    spec = lm.require_input()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(lm.model, spec, Path(tmp) / "model.onnx").path
        rows = profile_onnx(path, spec, batch=args.batch, threads=args.threads)
    print(f"\nONNX Runtime profile (FP32, batch {args.batch}):")
    print(format_profile(rows, args.rows))
    return {"batch": args.batch, "threads": args.threads, "nodes": to_json(rows)}
