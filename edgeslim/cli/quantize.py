"""``edgeslim quantize``: INT8 post-training quantization, deployed and measured on ONNX Runtime."""

from __future__ import annotations

import argparse
import os

from edgeslim.cli.common import add_model_args, batches_arg, model_from_args, refuse_overwrite

HELP = "post-training quantization to an INT8 ONNX model (QDQ), measured against FP32"
METHODS = ("minmax", "ema_minmax", "percentile", "kl", "mse", "aciq", "aciq_gauss")
WEIGHT_METHODS = ("minmax", "mse", "aciq", "aciq_gauss", "percentile")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--bits", type=int, default=8, help="weight and activation bits")
    p.add_argument("--w-bits", type=int, default=None, help="weight bits (2-8; default --bits)")
    p.add_argument("--a-bits", type=int, default=None, help="activation bits (default --bits)")
    p.add_argument(
        "--calib-method",
        default="minmax",
        choices=METHODS,
        help="activation calibrator (weights use it too when it applies per channel)",
    )
    p.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="per-output-channel weight scales (default on)",
    )
    p.add_argument(
        "--bias-correction",
        action="store_true",
        help="empirical per-channel bias correction (Nagel et al. 2019)",
    )
    p.add_argument(
        "--bit-allocation",
        action="store_true",
        help="per-channel weight bits averaging --w-bits (Banner et al. 2019)",
    )
    p.add_argument("--weight-only", action="store_true", help="quantize weights only")
    p.add_argument(
        "--reduce-range",
        choices=("auto", "on", "off"),
        default="auto",
        help="code 8-bit weights in 7 bits so x86 CPUs without VNNI cannot saturate "
        "(auto: when this CPU lacks VNNI)",
    )
    p.add_argument(
        "--exclude",
        nargs="*",
        default=[],
        metavar="PATTERN",
        help="layer names or regexes kept in float, e.g. fc",
    )
    p.add_argument(
        "--calib-data",
        required=True,
        help="calibration data: signs, digits, cifar10:DIR, ... or random:C,H,W",
    )
    p.add_argument("--calib-batches", type=int, default=16)
    p.add_argument(
        "--eval-data",
        default=None,
        help="accuracy data (default: --calib-data unless it is random)",
    )
    p.add_argument("--batch", type=batches_arg, default=(1, 8), help="latency batch sizes")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("-o", "--output", required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    from edgeslim.core.errors import EdgeslimError
    from edgeslim.quant.config import PTQConfig, activation_spec, weight_spec
    from edgeslim.workflows.quantize import run_quantize

    refuse_overwrite(args.model, args.output)
    w_bits = args.w_bits or args.bits
    a_bits = args.a_bits or args.bits
    if a_bits != 8 and not args.weight_only:
        raise EdgeslimError(
            f"--a-bits {a_bits}: ONNX Runtime's integer kernels take 8-bit activations; "
            "use the Python API (quantize_ptq) to simulate lower activation precision"
        )
    wmethod = args.calib_method if args.calib_method in WEIGHT_METHODS else "minmax"
    cfg = PTQConfig(
        weight=weight_spec(w_bits, wmethod, args.per_channel),
        activation=None if args.weight_only else activation_spec(a_bits, args.calib_method),
        calib_batches=args.calib_batches,
        bias_correction=args.bias_correction,
        bit_allocation=args.bit_allocation,
        exclude=tuple(args.exclude),
        reduce_range={"auto": None, "on": True, "off": False}[args.reduce_range],
    )
    eval_data = args.eval_data
    if eval_data is None and not args.calib_data.startswith("random"):
        eval_data = args.calib_data
    lm = model_from_args(args)
    report = run_quantize(
        lm,
        cfg,
        args.output,
        calib_data=args.calib_data,
        eval_data=eval_data,
        batches=args.batch,
        runs=args.runs,
        threads=args.threads,
    )
    print(report["text"])
    for key, value in report.items():
        if key.startswith("simulation_vs_ort_"):
            measure = key.removeprefix("simulation_vs_ort_").replace("_", " ")
            print(f"simulation vs ONNX Runtime {measure}: {100 * value:.2f}%")
    print(f"wrote {args.output}/model.onnx and {args.output}/report.json")
    return 0
