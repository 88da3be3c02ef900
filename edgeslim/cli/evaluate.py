"""``edgeslim evaluate``: the data's task metrics (top-1, mIoU, ...) of a model or ONNX file."""

from __future__ import annotations

import argparse

from edgeslim.cli.common import add_model_args, model_from_args, write_json

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
    loader = make_loader(load_dataset(args.data, args.split), args.batch_size, shuffle=False)
    if args.model.endswith(".onnx"):
        res = evaluate_onnx(args.model, loader, task)
    else:
        res = evaluate_model(model_from_args(args).model, loader, task)
    res = {"model": args.model, "data": args.data, "split": args.split, "task": task.name, **res}
    shown = ", ".join(
        f"{m.label} {100 * res[m.name]:.2f}%" if m.percent else f"{m.label} {res[m.name]:.4g}"
        for m in task.metrics
    )
    print(f"{shown} on {res['n']} samples ({args.data}, {args.split})")
    if args.json:
        write_json(args.json, res)
    return 0
