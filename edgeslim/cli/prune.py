"""``edgeslim prune``: remove channels physically, fine-tune, and report measured gains."""

from __future__ import annotations

import argparse
import os

from edgeslim.cli.common import add_model_args, add_speed_args, batches_arg, refuse_overwrite
from edgeslim.prune.criteria import CRITERIA

HELP = "structured pruning: remove channels (ratio, MACs or measured-latency target)"


def _criteria_help() -> str:
    return "; ".join(f"{n}: {CRITERIA.get(n).summary}" for n in CRITERIA.names())


def _round_to(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 1, got {text!r}")
    return k


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--ratio", type=float, help="fraction of channels to remove (0..1)")
    target.add_argument("--target-macs", type=float, help="MACs of the result (e.g. 9e8)")
    target.add_argument(
        "--target-latency-ms",
        type=float,
        help="ONNX Runtime batch-1 median to reach; measured step by step",
    )
    p.add_argument(
        "--criterion",
        default="l1",
        choices=CRITERIA.names(),
        metavar="NAME",
        help=f"channel importance. {_criteria_help()} (default l1)",
    )
    p.add_argument(
        "--global",
        dest="global_ranking",
        action="store_true",
        help="rank channels across layers instead of a uniform per-layer ratio",
    )
    p.add_argument(
        "--search",
        action="store_true",
        help="choose each group's ratio by its measured damage on --data's validation "
        "split, the least total damage within --target-macs / --target-latency-ms (MILP)",
    )
    p.add_argument(
        "--recalibrate-bn",
        action="store_true",
        help="re-estimate BatchNorm statistics of the pruned model on 30 --data training "
        "batches (adaptive BN: no gradient step; fine-tuning starts from it)",
    )
    p.add_argument(
        "--round-to",
        type=_round_to,
        default="auto",
        metavar="K",
        help="kept widths are multiples of K. Default 'auto': the multiple the runtime's "
        "measured latency staircase favours on this CPU (measured once, cached); "
        "1 keeps exact ratios",
    )
    p.add_argument("--min-channels", type=int, default=1)
    p.add_argument(
        "--ignore",
        nargs="*",
        default=[],
        metavar="LAYER",
        help="layers (names or regexes) whose output channels are kept",
    )
    p.add_argument(
        "--override",
        nargs="*",
        default=[],
        metavar="LAYER=RATIO",
        help="per-layer ratios, e.g. 'layer4.*=0.3'",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail on an op without a handler (naming its layer) instead of leaving its "
        "channels untouched",
    )
    p.add_argument(
        "--data",
        default=None,
        help="dataset for data-driven criteria, "
        "fine-tuning and accuracy (signs, digits, cifar10:DIR, ...)",
    )
    p.add_argument("--finetune-epochs", type=int, default=0)
    p.add_argument("--steps", type=int, default=1, help="prune/fine-tune rounds")
    p.add_argument("--lr", type=float, default=0.01, help="fine-tuning learning rate")
    p.add_argument(
        "--distill",
        default=None,
        metavar="LOSS",
        help="fine-tune with distillation from the unpruned input model as a frozen teacher: "
        "kd, kd+at, kd+feature, ... (default: plain cross-entropy)",
    )
    p.add_argument("--temperature", type=float, default=4.0, help="KD temperature")
    p.add_argument("--alpha", type=float, default=0.9, help="KD weight of the soft term")
    add_speed_args(p)
    p.add_argument("--batch", type=batches_arg, default=(1, 8), help="latency batch sizes")
    p.add_argument("--runs", type=int, default=30, help="timed runs per model and batch")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads")
    p.add_argument("-o", "--output", required=True, help="output directory (saved model)")


def run(args: argparse.Namespace) -> int:
    from edgeslim.cli.common import model_from_args, task_defaults
    from edgeslim.core.errors import EdgeslimError
    from edgeslim.distill.losses import LossSpec
    from edgeslim.prune.config import PruneConfig
    from edgeslim.train.config import TrainConfig
    from edgeslim.workflows.prune import run_prune

    refuse_overwrite(args.model, args.output)
    overrides = []
    for item in args.override:
        name, sep, r = item.rpartition("=")
        try:
            overrides.append((name, float(r)))
        except ValueError:
            sep = ""
        if not sep:
            raise EdgeslimError(f"bad --override {item!r}: expected LAYER=RATIO")
    if args.finetune_epochs and not args.data:
        raise EdgeslimError("--finetune-epochs needs --data")
    if args.distill and not args.finetune_epochs:
        raise EdgeslimError("--distill needs --finetune-epochs (it is how the pruned model trains)")
    cfg = PruneConfig(
        ratio=args.ratio,
        target_macs=int(args.target_macs) if args.target_macs else None,
        target_latency_ms=args.target_latency_ms,
        criterion=args.criterion,
        global_ranking=args.global_ranking,
        overrides=tuple(overrides),
        ignore=tuple(args.ignore),
        round_to=args.round_to,
        min_channels=args.min_channels,
        strict=args.strict,
    )
    if args.data and args.num_classes is None and args.model.isidentifier():
        from edgeslim.data import dataset_info

        args.num_classes = dataset_info(args.data).num_classes  # zoo model: head sized to data
    lm = model_from_args(args)
    report = run_prune(
        lm,
        cfg,
        args.output,
        data=args.data,
        finetune_epochs=args.finetune_epochs,
        steps=args.steps,
        lr=args.lr,
        batches=args.batch,
        runs=args.runs,
        threads=args.threads,
        train=TrainConfig(  # the data's task's batch and momentum (a detector's YOLOv5 SGD)
            **{k: v for k, v in task_defaults(args.data).items() if k != "lr"},
            amp=args.amp,
            channels_last=args.channels_last,
        ),
        distill=args.distill,
        distill_spec=LossSpec(temperature=args.temperature, alpha=args.alpha),
        search=args.search,
        recalibrate=args.recalibrate_bn,
    )
    print(report["text"])
    print(f"wrote {args.output} (saved model, model.onnx, report.json)")
    return 0
