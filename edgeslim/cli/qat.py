"""``edgeslim qat``: quantization-aware training with one method, saved, exported and reported."""

from __future__ import annotations

import argparse

from edgeslim.cli.common import add_model_args, model_from_args, parse_lr, refuse_overwrite

HELP = (
    "quantization-aware training (STE, LSQ, LSQ+, PACT, DoReFa, DSQ, binary, ternary, "
    "learned per-layer bits)"
)
METHODS = ("ste", "lsq", "lsq_plus", "pact", "dorefa", "dsq", "binary", "ternary", "learned_bits")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--method", default="lsq", choices=METHODS)
    p.add_argument(
        "--w-bits", type=int, default=None, help="weight bits, 2-8 (learned_bits: the start; 8)"
    )
    p.add_argument(
        "--a-bits",
        type=int,
        default=None,
        help="activation bits, 2-8; 0 keeps activations in float (default 4; learned_bits 8)",
    )
    p.add_argument(
        "--target-bits", type=float, default=5.0, help="learned_bits: average weight bits aimed at"
    )
    p.add_argument(
        "--penalty", type=float, default=1.0, help="learned_bits: the size penalty's strength"
    )
    p.add_argument(
        "--steps",
        default="2,1,1",
        metavar="W,A,F",
        help="learned_bits: epochs of its steps (weights, activations, fine-tune); "
        "--epochs is ignored",
    )
    p.add_argument(
        "--init",
        choices=("paper", "mse"),
        default=None,
        help="lsq: initial step sizes by least squared error (default) or by the paper's rule",
    )
    p.add_argument("--data", required=True, help="training data: signs, digits, cifar10:DIR, ...")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=parse_lr, default=0.01, help="learning rate, or auto")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--calib-batches", type=int, default=4)
    p.add_argument("--freeze-bn-epoch", type=int, default=None)
    p.add_argument("--freeze-observer-epoch", type=int, default=None)
    p.add_argument("--distill", action="store_true", help="distil from the float model (KD)")
    p.add_argument(
        "--exclude", nargs="*", default=[], metavar="PATTERN", help="layers kept in float"
    )
    p.add_argument(
        "--pack-int4",
        action="store_true",
        help="on the INT8 QDQ path too, store weights that fit in 4 bits as INT4: a smaller "
        "file, but those layers leave ONNX Runtime's integer kernels and run in float",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, help="output directory")


def learned_bits_args(args: argparse.Namespace) -> dict:
    """The learned-bits config fields of the command line."""
    from edgeslim.core.errors import EdgeslimError

    parts = args.steps.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise EdgeslimError(f"--steps takes three epoch counts W,A,F, got {args.steps!r}")
    w, a, f = (int(p) for p in parts)
    return {
        "target_bits": args.target_bits,
        "penalty": args.penalty,
        "weight_epochs": w,
        "activation_epochs": a,
        "finetune_epochs": f,
    }


def run(args: argparse.Namespace) -> int:
    from edgeslim.core.errors import EdgeslimError
    from edgeslim.quant.qat import CONFIGS
    from edgeslim.train.config import TrainConfig
    from edgeslim.workflows.qat import run_qat

    refuse_overwrite(args.model, args.output)
    learned = args.method == "learned_bits"
    w_bits = args.w_bits if args.w_bits is not None else (8 if learned else 4)
    a_bits = args.a_bits if args.a_bits is not None else (8 if learned else 4)
    extra = learned_bits_args(args) if learned else {}
    if args.init is not None:
        if args.method != "lsq":
            raise EdgeslimError(f"--init applies to --method lsq only, not {args.method}")
        extra["init"] = args.init
    cfg = CONFIGS[args.method](
        w_bits=w_bits,
        a_bits=a_bits or None,
        calib_batches=args.calib_batches,
        freeze_bn_epoch=args.freeze_bn_epoch,
        freeze_observer_epoch=args.freeze_observer_epoch,
        exclude=tuple(args.exclude),
        **extra,
    )
    train = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
    report = run_qat(
        model_from_args(args),
        cfg,
        args.output,
        data=args.data,
        train=train,
        distill=args.distill,
        pack_int4=args.pack_int4,
    )
    print(report["text"])
    print(f"wrote {args.output}/model, {args.output}/model.onnx and {args.output}/report.json")
    return 0
