"""A trained YOLOv5-n on ``driving``, pruned to equal MACs by edgeslim and by Torch-Pruning,
fine-tuned identically: mAP@0.5 and mAP@0.5:0.95 over seeds (issue 12).

edgeslim: ``prune(model, x, PruneConfig(ratio=R, criterion="l1"))`` with its defaults
(channels coupled through the C3 blocks and the concat neck, widths aligned for this
CPU, the three head convs' outputs fixed). Torch-Pruning 1.6.1: ``MetaPruner`` with L1
magnitude importance, the three head convs ignored, its uniform ratio bisected to the
largest model with MACs at most edgeslim's. Both are then fine-tuned with the same
``TrainConfig`` (YOLOv5's SGD at ``--lr``, batch 16, cosine, bf16) and seed, and
scored on the test split. Torch-Pruning is installed for this benchmark only
(``pip install torch-pruning==1.6.1``).

    python benchmarks/detector_pruning_vs_tp.py --model DIR --ratio 0.3 --epochs 2 --seeds 0,1,2

Writes ``benchmarks/results/detector_pruning_vs_tp.{json,md}`` with the CPU model.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from edgeslim.bench.accuracy import evaluate_model
from edgeslim.bench.macs import count_macs, count_params
from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.cpu import cpu_model
from edgeslim.data import load_dataset, make_loader
from edgeslim.models.saved import load_saved
from edgeslim.prune import PruneConfig, prune
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from pruning_accuracy import tp_prune_to_macs  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def score(model: torch.nn.Module, data: str) -> dict:
    res = evaluate_model(
        model, make_loader(load_dataset(data, "test"), 64, shuffle=False), "detection"
    )
    return {"map50": res["map50"], "map": res["map"]}


def finetune(model: torch.nn.Module, data: str, epochs: int, lr: float, seed: int) -> None:
    cfg = TrainConfig(epochs=epochs, lr=lr, momentum=0.937, batch_size=16, warmup_epochs=0,
                      amp=True, channels_last=True, seed=seed)  # fmt: skip
    Trainer(model, cfg, task="detection", progress=False).fit(
        load_dataset(data, "train", augment=True), load_dataset(data, "val")
    )


def run(args: argparse.Namespace) -> dict:
    lm = load_saved(args.model)
    dense = lm.model.eval()
    x = lm.require_input().with_batch(1).example()
    es = prune(dense, x, PruneConfig(ratio=args.ratio, criterion="l1")).model
    target = count_macs(es, x)[0]
    tp_model = tp_prune_to_macs(dense, x, target, ignored=lambda m: list(m.head))
    shapes = [tuple(o.shape) for o in dense(x)]
    models = {"edgeslim": es, "torch-pruning": tp_model}
    for name, m in models.items():
        got = [tuple(o.shape) for o in m.eval()(x)]
        if got != shapes:
            raise SystemExit(f"{name} changed the head maps: {got} != {shapes}")
    rows: dict = {
        "dense": {
            "macs": count_macs(dense, x)[0],
            "params": count_params(dense),
            **score(dense, args.data),
        },  # fmt: skip
    }
    for name, m in models.items():
        rows[name] = {"macs": count_macs(m, x)[0], "params": count_params(m),
                      "before_ft": score(m, args.data), "seeds": {}}  # fmt: skip
    for seed in args.seeds:
        for name, m in models.items():
            tuned = copy.deepcopy(m)
            t = time.perf_counter()
            finetune(tuned, args.data, args.epochs, args.lr, seed)
            rows[name]["seeds"][seed] = {**score(tuned, args.data), "s": time.perf_counter() - t}
            print(name, seed, rows[name]["seeds"][seed], flush=True)
    for name in models:
        for k in ("map50", "map"):
            vals = [r[k] for r in rows[name]["seeds"].values()]
            rows[name][f"mean_{k}"] = statistics.mean(vals)
    return rows


def report(rows: dict, args: argparse.Namespace, cpu: str) -> str:
    d = rows["dense"]
    lines = [
        "# YOLOv5-n on driving: edgeslim vs Torch-Pruning 1.6.1 at equal MACs (issue 12)",
        "",
        f"CPU: {cpu}. Model: `{args.model}` (test mAP@0.5 {d['map50']:.2%}, mAP@0.5:0.95 "
        f"{d['map']:.2%}, {d['macs'] / 1e6:.0f} MMACs). edgeslim L1 at ratio {args.ratio}; "
        f"Torch-Pruning L1 bisected to at most edgeslim's MACs; both fine-tuned {args.epochs} "
        f"epoch(s) with one TrainConfig per seed (SGD lr {args.lr}, batch 16, bf16, NHWC).",
        "",
        "| method | MMACs | params | mAP@0.5 before FT | mAP@0.5 per seed | mean mAP@0.5 "
        "| mean mAP@0.5:0.95 |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for name in ("edgeslim", "torch-pruning"):
        r = rows[name]
        per = " / ".join(f"{s['map50']:.2%}" for s in r["seeds"].values())
        lines.append(
            f"| {name} | {r['macs'] / 1e6:.0f} | {r['params']:,} | {r['before_ft']['map50']:.2%} "
            f"| {per} | {r['mean_map50']:.2%} | {r['mean_map']:.2%} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a trained yolov5n/yolov5s saved-model dir")
    p.add_argument("--data", default="driving")
    p.add_argument("--ratio", type=float, default=0.3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.005, help="fine-tuning peak lr (cosine, SGD)")
    p.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    rows = run(args)
    cpu = cpu_model()
    args.results.mkdir(parents=True, exist_ok=True)
    out = {"cpu": cpu, "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
    write_text_atomic(args.results / "detector_pruning_vs_tp.json", json.dumps(out, indent=2))
    write_text_atomic(args.results / "detector_pruning_vs_tp.md", report(rows, args, cpu))
    return out


if __name__ == "__main__":
    main()
