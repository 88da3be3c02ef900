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


def run(args: argparse.Namespace) -> int:
    from edgeslim.bench.analyze import analyze, format_analysis

    lm = model_from_args(args)
    report = analyze(lm, onnx=not args.no_onnx)
    print(format_analysis(report, args.rows))
    if args.json:
        write_json(args.json, report)
    return 0
