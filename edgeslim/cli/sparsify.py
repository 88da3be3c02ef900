"""``edgeslim sparsify``: zero weights (magnitude, AGP, N:M, R-TOSS), fine-tune, compress."""

from __future__ import annotations

import argparse
import os

from edgeslim.cli.common import add_model_args, batches_arg, refuse_overwrite

HELP = "sparsity: zero weights (magnitude, agp, N:M, R-TOSS patterns) and store them compressed"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from edgeslim.workflows.sparsify import METHODS

    add_model_args(p)
    p.add_argument(
        "--method",
        required=True,
        choices=METHODS,
        help="magnitude: one-shot smallest |w|; taylor: smallest (dL/dw * w)^2 on --data "
        "batches; agp: magnitude grown during fine-tuning "
        "(Zhu & Gupta); nm: N of every M along the reduction axis; rtoss-3ep / rtoss-2ep: "
        "3 or 2 adjacent entries per 3x3 kernel (R-TOSS); patterns: groups of filters share "
        "one pattern of 2, 3 or 4 taps (--sparsity 0.778 / 0.667 / 0.556), filters reordered",
    )
    p.add_argument(
        "--sparsity",
        type=float,
        default=None,
        help="fraction of zero weights (magnitude, taylor, agp; patterns picks its taps); "
        "the others' is fixed",
    )
    p.add_argument("--nm", default="2:4", help="N:M of --method nm (2:4, 1:4, 4:8)")
    p.add_argument(
        "--global",
        dest="global_ranking",
        action="store_true",
        help="magnitude / taylor / agp: one ranking over all layers, not each at --sparsity",
    )
    p.add_argument("--data", default=None, help="dataset to fine-tune and evaluate on")
    p.add_argument("--finetune-epochs", type=int, default=None, help="default: 1 with --data")
    p.add_argument("--lr", type=float, default=0.01, help="fine-tuning learning rate")
    p.add_argument("--batch-size", type=int, default=128, help="fine-tuning batch size")
    p.add_argument(
        "--distill",
        default=None,
        metavar="LOSS",
        help="fine-tune with distillation from the dense input model as a frozen teacher: "
        "kd, kd+at, kd+feature, ... (default: the task loss)",
    )
    p.add_argument("--temperature", type=float, default=4.0, help="KD temperature")
    p.add_argument("--alpha", type=float, default=0.9, help="KD weight of the soft term")
    p.add_argument(
        "--values",
        default="int8",
        choices=("int8", "kmeans", "float"),
        help="how weights.esz stores the nonzeros: INT8 per channel, indices into a k-means "
        "codebook per tensor (Deep Compression), or exact floats",
    )
    p.add_argument("--codebook-bits", type=int, default=4, help="bits of --values kmeans")
    p.add_argument("--batch", type=batches_arg, default=(1, 8), help="latency batch sizes")
    p.add_argument("--runs", type=int, default=30, help="timed runs per model and batch")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads")
    p.add_argument("-o", "--output", required=True, help="output directory (saved model)")


def run(args: argparse.Namespace) -> int:
    from edgeslim.cli.common import model_from_args
    from edgeslim.distill.losses import LossSpec
    from edgeslim.train.config import TrainConfig
    from edgeslim.workflows.sparsify import run_sparsify, sparsity_plan

    refuse_overwrite(args.model, args.output)
    plan = sparsity_plan(
        args.method, args.sparsity, args.nm, "global" if args.global_ranking else "layer"
    )
    epochs = args.finetune_epochs if args.finetune_epochs is not None else int(bool(args.data))
    if args.data and args.num_classes is None and args.model.isidentifier():
        from edgeslim.data import dataset_info

        args.num_classes = dataset_info(args.data).num_classes  # zoo model: head sized to data
    lm = model_from_args(args)
    report = run_sparsify(
        lm,
        plan,
        args.output,
        data=args.data,
        finetune_epochs=epochs,
        lr=args.lr,
        train=TrainConfig(batch_size=args.batch_size),
        values=args.values,
        codebook_bits=args.codebook_bits,
        distill=args.distill,
        distill_spec=LossSpec(temperature=args.temperature, alpha=args.alpha),
        batches=args.batch,
        runs=args.runs,
        threads=args.threads,
    )
    print(report["text"])
    print(f"wrote {args.output} (saved model, model.onnx, weights.esz, report.json)")
    return 0
