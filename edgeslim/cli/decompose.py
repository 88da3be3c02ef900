"""``edgeslim decompose``: low-rank factorization, measured against the input on ONNX Runtime."""

from __future__ import annotations

import argparse
import os

from edgeslim.cli.common import add_model_args, batches_arg, model_from_args, refuse_overwrite

HELP = "factorize layers (svd, tucker2, cp, spatial, dws) and measure the result"
METHODS = ("svd", "tucker2", "cp", "spatial", "dws", "embedding")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument(
        "--method",
        required=True,
        choices=METHODS,
        help="svd: Linear layers; tucker2 / cp / spatial (k x 1 + 1 x k) / dws "
        "(depthwise-separable): k x k convolutions; embedding: ALBERT's factorized word "
        "embedding (vocabulary x rank, then rank x hidden)",
    )
    p.add_argument(
        "--share-groups",
        type=int,
        default=None,
        metavar="N",
        help="then share the blocks of the layer stack (a BERT's encoder layers) in N groups, "
        "ALBERT-style (1: all layers share one); size only, not speed",
    )
    rule = p.add_mutually_exclusive_group(required=True)
    rule.add_argument("--rank", type=int, help="rank of every layer (dws: depth multiplier)")
    rule.add_argument("--energy", type=float, help="fraction of squared singular values kept")
    rule.add_argument("--ratio", type=float, help="fraction of each layer's parameters kept")
    rule.add_argument("--vbmf", action="store_true", help="ranks by EVBMF (Nakajima et al.)")
    rule.add_argument(
        "--target-macs",
        type=float,
        help="MACs of the result (e.g. 2e7), or a fraction <= 1 of the input's",
    )
    p.add_argument(
        "--layers",
        nargs="*",
        default=None,
        metavar="PATTERN",
        help="only these layers (names or regexes matching the whole name)",
    )
    p.add_argument(
        "--measured",
        action="store_true",
        help="keep a layer factorized only where ONNX Runtime times it faster than the dense "
        "layer at its real input shape (timings in report.json)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=0.05,
        help="with --measured: how much faster, as a fraction of the dense layer's ms",
    )
    p.add_argument("--data", default=None, help="evaluate both models on this dataset")
    p.add_argument("--batch", type=batches_arg, default=(1, 8), help="latency batch sizes")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("-o", "--output", required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    from edgeslim.core.select import matches_any
    from edgeslim.lowrank import RankRule, config_for
    from edgeslim.workflows.decompose import run_decompose
    from edgeslim.workflows.lowrank_measured import MeasuredRule

    refuse_overwrite(args.model, args.output)
    if args.target_macs is not None:
        rule = RankRule(ratio=1.0)  # replaced by the ratio that reaches the target
    else:
        rule = RankRule(rank=args.rank, energy=args.energy, ratio=args.ratio, vbmf=args.vbmf)
    patterns = args.layers
    share = None
    if args.share_groups is not None:
        from edgeslim.lowrank import LayerSharingConfig

        share = LayerSharingConfig(groups=args.share_groups)
    measured = None
    if args.measured:
        measured = MeasuredRule(margin=args.margin, runs=args.runs, threads=args.threads)
    report = run_decompose(
        model_from_args(args),
        config_for(args.method, rule),
        args.output,
        target_macs=args.target_macs,
        filter_fn=(lambda m, n: matches_any(n, patterns)) if patterns else None,
        measured=measured,
        share=share,
        data=args.data,
        batches=args.batch,
        runs=args.runs,
        threads=args.threads,
    )
    print(report["text"])
    print(f"wrote {args.output}/model.onnx, the saved model and {args.output}/report.json")
    return 0
