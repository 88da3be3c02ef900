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
    rule.add_argument(
        "--latency-budget",
        type=float,
        metavar="F",
        help="with --search: the factorizable layers' ONNX Runtime ms, as a fraction of "
        "their dense ms",
    )
    p.add_argument(
        "--search",
        action="store_true",
        help="choose each layer's rank (or keep it dense) by the budget search's MILP: "
        "measured damage (validation loss with --data, else the output's error) and "
        "measured ONNX Runtime ms of a few candidate ranks; a form not measured "
        "--margin faster than the dense layer is never chosen. Needs --target-macs or "
        "--latency-budget",
    )
    p.add_argument(
        "--fill",
        type=float,
        default=0.0,
        metavar="F",
        help="with --search: spend at least F of the budget (e.g. 0.95); without it the "
        "budget is a ceiling, and where low ranks measure no damage the result can land "
        "well below it",
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
        help="with --measured / --search: how much faster, as a fraction of the dense layer's ms",
    )
    p.add_argument("--data", default=None, help="evaluate both models on this dataset")
    p.add_argument("--batch", type=batches_arg, default=(1, 8), help="latency batch sizes")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("-o", "--output", required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    from edgeslim.core.errors import EdgeslimError
    from edgeslim.core.select import matches_any
    from edgeslim.lowrank import RankRule, config_for
    from edgeslim.workflows.decompose import run_decompose
    from edgeslim.workflows.lowrank_measured import MeasuredRule
    from edgeslim.workflows.rank_search import RankSearch

    refuse_overwrite(args.model, args.output)
    if args.latency_budget is not None and not args.search:
        raise EdgeslimError("--latency-budget is the rank search's budget: add --search")
    if args.search and args.measured:
        raise EdgeslimError("--search times every candidate itself: drop --measured")
    if args.fill and not args.search:
        raise EdgeslimError("--fill is the rank search's floor: add --search")
    if args.search and args.target_macs is None and args.latency_budget is None:
        raise EdgeslimError("--search spends a budget: give --target-macs or --latency-budget")
    if args.target_macs is not None or args.latency_budget is not None:
        rule = RankRule(ratio=1.0)  # replaced by the ratio that reaches the target
    else:
        rule = RankRule(rank=args.rank, energy=args.energy, ratio=args.ratio, vbmf=args.vbmf)
    patterns = args.layers
    share = None
    if args.share_groups is not None:
        from edgeslim.lowrank import LayerSharingConfig

        share = LayerSharingConfig(groups=args.share_groups)
    measured = rank_search = None
    timing = MeasuredRule(margin=args.margin, runs=args.runs, threads=args.threads)
    if args.measured:
        measured = timing
    if args.search:
        rank_search = RankSearch(
            args.target_macs, args.latency_budget, timing=timing, fill=args.fill
        )
    report = run_decompose(
        model_from_args(args),
        config_for(args.method, rule),
        args.output,
        target_macs=None if args.search else args.target_macs,
        rank_search=rank_search,
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
