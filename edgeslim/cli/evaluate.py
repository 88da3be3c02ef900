"""``edgeslim evaluate``: the data's task metrics (top-1, mIoU, ...) of a model or ONNX file."""

from __future__ import annotations

import argparse

from edgeslim.cli.common import (
    add_model_args,
    model_from_args,
    model_normalization,
    write_json,
)

HELP = "accuracy (the data's task metrics) on a dataset split (PyTorch model or .onnx)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--data", required=True, help="dataset spec: signs, digits, cifar10:DIR, ...")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--json", default=None)


def run(args: argparse.Namespace) -> int:
    from edgeslim.bench.accuracy import evaluate_model, evaluate_onnx
    from edgeslim.data import dataset_info, load_dataset, make_loader
    from edgeslim.tasks import get_task

    task = get_task(dataset_info(args.data).task)
    if args.model.endswith(".onnx"):
        from edgeslim.data.stats import Normalization
        from edgeslim.export.metadata import read_onnx_metadata

        norm = Normalization.from_meta(read_onnx_metadata(args.model))
        ds = load_dataset(args.data, args.split, normalization=norm)
        res = evaluate_onnx(args.model, make_loader(ds, args.batch_size, shuffle=False), task)
    else:
        lm = model_from_args(args)
        # a saved model is fed the statistics it was trained with, whatever the data's own
        ds = load_dataset(args.data, args.split, normalization=model_normalization(lm))
        res = evaluate_model(lm.model, make_loader(ds, args.batch_size, shuffle=False), task)
    res = {"model": args.model, "data": args.data, "split": args.split, "task": task.name, **res}
    shown = ", ".join(
        f"{m.label} {100 * res[m.name]:.2f}%" if m.percent else f"{m.label} {res[m.name]:.4g}"
        for m in task.metrics
    )
    print(f"{shown} on {res['n']} samples ({args.data}, {args.split})")
    if args.json:
        write_json(args.json, res)
    return 0
