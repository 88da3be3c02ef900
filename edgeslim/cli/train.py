"""``edgeslim train``: train a model on a dataset with per-epoch checkpoints (resumable)."""

from __future__ import annotations

import argparse

from edgeslim.cli.common import add_train_args, refuse_overwrite, train_config

HELP = "train a model on a dataset (checkpoint every epoch; rerun to resume)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="zoo name, saved model dir, file.py:factory or hf:config.json")
    p.add_argument("--data", required=True, help="dataset spec: signs, digits, cifar10:DIR, ...")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("-o", "--output", required=True, help="output directory (saved model)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 2) when the validation metric is still at chance after the first epochs "
        "(tasks with a chance level, e.g. classification top-1)",
    )
    add_train_args(p)


def run(args: argparse.Namespace) -> int:
    from edgeslim.workflows.train import train_model

    refuse_overwrite(args.model, args.output)
    lm = train_model(args.model, args.data, train_config(args), args.output, strict=args.strict)
    print(f"saved {args.output}: test {_headline(lm.meta)}")
    return 0


def _headline(meta: dict) -> str:
    """``top-1 93.20%`` (or the run's task's primary metric)."""
    from edgeslim.tasks import get_task

    m = get_task(meta.get("task", "classification")).primary_metric
    v = meta[f"test_{m.name}"]
    return f"{m.label} {100 * v:.2f}%" if m.percent else f"{m.label} {v:.4g}"
