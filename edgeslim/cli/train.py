"""``edgeslim train``: train a model on a dataset with per-epoch checkpoints (resumable)."""

from __future__ import annotations

import argparse

from edgeslim.cli.common import refuse_overwrite

HELP = "train a model on a dataset (checkpoint every epoch; rerun to resume)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="zoo name, saved model dir, file.py:factory or hf:config.json")
    p.add_argument("--data", required=True, help="dataset spec: signs, digits, cifar10:DIR, ...")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("-o", "--output", required=True, help="output directory (saved model)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adamw"))
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", default="cosine", choices=("cosine", "step", "constant"))
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    from edgeslim.train.config import TrainConfig
    from edgeslim.train.fit_model import train_model

    refuse_overwrite(args.model, args.output)
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        label_smoothing=args.label_smoothing,
        augment=not args.no_augment,
        seed=args.seed,
        device=args.device,
    )
    lm = train_model(args.model, args.data, cfg, args.output)
    print(f"saved {args.output}: test top-1 {100 * lm.meta['test_top1']:.2f}%")
    return 0
