"""``edgeslim export``: ONNX with a dynamic batch, parity-checked against eager."""

from __future__ import annotations

import argparse

from edgeslim.cli.common import (
    add_model_args,
    model_from_args,
    model_normalization,
    refuse_overwrite,
)

HELP = "export to ONNX (dynamic batch) and check ONNX Runtime against eager"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("-o", "--output", required=True, help="destination .onnx file")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--atol", type=float, default=1e-4, help="parity tolerance (scaled by |logits|)")
    p.add_argument(
        "--postprocess",
        choices=("none", "nms"),
        default="none",
        help="nms (detectors): decode boxes and class-aware NMS inside the graph, "
        "outputs boxes, scores, classes, batch_index",
    )
    p.add_argument("--conf", type=float, default=0.25, help="--postprocess nms: score threshold")
    p.add_argument("--iou", type=float, default=0.45, help="--postprocess nms: IoU threshold")
    p.add_argument("--max-det", type=int, default=100, help="--postprocess nms: per image")


def run(args: argparse.Namespace) -> int:
    refuse_overwrite(args.model, args.output)
    lm = model_from_args(args)
    if args.postprocess == "nms":
        from edgeslim.export.detector import export_detector

        res = export_detector(
            lm.model,
            lm.require_input(),
            args.output,
            args.conf,
            args.iou,
            args.max_det,
            opset=args.opset,
            atol=args.atol,
        )
    else:
        from edgeslim.export.onnx import export_onnx

        res = export_onnx(
            lm.model, lm.require_input(), args.output, opset=args.opset, atol=args.atol
        )
    norm = model_normalization(lm)
    if norm is not None:  # the deployed file says what its inputs must be normalized with
        from edgeslim.data.stats import META_KEY
        from edgeslim.export.metadata import write_onnx_metadata

        write_onnx_metadata(res.path, {META_KEY: norm.to_meta()})
    print(f"wrote {res.path} ({res.size_bytes:,} bytes)")
    print(f"parity: max |ort - eager| = {res.max_abs_diff:.3g}")
    return 0
