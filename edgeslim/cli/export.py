"""``edgeslim export``: ONNX with a dynamic batch, parity-checked against eager.

``--ort-quant dynamic|int4`` then quantizes the file's Linear layers (``MatMul`` with a
constant weight) with ONNX Runtime's own tools (:mod:`edgeslim.export.ort_quant`):
dynamic INT8, or 4-bit weight-only ``MatMulNBits``. Static INT8 with calibrated
activations (attention included) is ``edgeslim quantize``.
"""

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
    p.add_argument(
        "--ort-quant",
        choices=("none", "dynamic", "int4"),
        default="none",
        help="quantize Linear layers with ONNX Runtime: dynamic (INT8 weights, activations "
        "quantized per run, per-channel) or int4 (weight-only MatMulNBits: ~4x smaller "
        "Linear weights, not faster on x86 CPUs; see benchmarks/results/bert_ort.md). "
        "Static INT8 with calibration is `edgeslim quantize`",
    )
    p.add_argument(
        "--block-size", type=int, default=32, help="--ort-quant int4: input channels per scale"
    )
    p.add_argument(
        "--accuracy-level",
        type=int,
        default=None,
        choices=(0, 1, 2, 3, 4),
        help="--ort-quant int4: MatMulNBits compute type (4: INT8 activations)",
    )


def run(args: argparse.Namespace) -> int:
    refuse_overwrite(args.model, args.output)
    lm = model_from_args(args)
    if args.ort_quant != "none":
        if args.postprocess != "none":
            from edgeslim.core.errors import EdgeslimError

            raise EdgeslimError("--ort-quant and --postprocess cannot be combined")
        return _quantized(args, lm)
    from edgeslim.recipe.deploy import is_fake_quantized

    if args.postprocess == "nms" and is_fake_quantized(lm.model):
        return _quantized_nms(args, lm)
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


def _quantized_nms(args: argparse.Namespace, lm) -> int:
    """A fake-quantized detector: its INT8 QDQ file (edgeslim's scales), then decode + NMS."""
    import tempfile
    from pathlib import Path

    from edgeslim.export.postprocess import append_postprocess
    from edgeslim.recipe.deploy import export_deployable
    from edgeslim.tasks.detection.detect import NMSConfig

    with tempfile.TemporaryDirectory() as d:
        raw = export_deployable(lm.model, lm.require_input(), Path(d) / "int8.onnx", args.opset)
        cfg = NMSConfig(args.conf, args.iou, args.max_det)
        diffs = append_postprocess(raw, lm.require_input(), args.output, cfg)
    size = Path(args.output).stat().st_size
    print(f"wrote {args.output} ({size:,} bytes): INT8 QDQ + decode + class-aware NMS")
    print(f"post-processing parity on ONNX Runtime's head maps: boxes {diffs['boxes']:.3g} px")
    return 0


def _quantized(args: argparse.Namespace, lm) -> int:
    from edgeslim.export.ort_quant import OrtQuantConfig, export_quantized

    cfg = OrtQuantConfig(
        args.ort_quant, block_size=args.block_size, accuracy_level=args.accuracy_level
    )
    res = export_quantized(lm.model, lm.require_input(), args.output, cfg, opset=args.opset)
    print(
        f"wrote {res.path} ({res.size_bytes:,} bytes; FP32 file {res.fp32_size_bytes:,} bytes, "
        f"{res.fp32_size_bytes / res.size_bytes:.2f}x smaller)"
    )
    kernel = "MatMulNBits" if args.ort_quant == "int4" else "integer"
    print(f"{res.quantized} MatMul layers on {kernel} kernels")
    worst = max(res.output_diffs.values())
    print(f"parity: max |ort {args.ort_quant} - eager fp32| = {worst:.3g}")
    return 0
