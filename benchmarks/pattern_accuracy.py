"""Accuracy cost of shared patterns against per-kernel R-TOSS at equal sparsity, on signs.

The dense model is the shipped, converged ResNet-18-small-half on signs. Every 3×3
conv gets ``k`` of 9 taps (k = 3: 66.7 %, k = 2: 77.8 %) either per kernel (R-TOSS,
a pattern per filter × input channel from a 21-pattern dictionary) or shared by a
group of filters (``SharedPatternConfig``, 4 groups per conv, filters permuted).
Only 3×3 convs are masked in both (R-TOSS's 1×1 regrouping is left out) so the
sparsity is equal. Top-1 on the test split one-shot, then after the same short
fine-tune with the masks (same epochs, data, learning rate and seed for both).

The section ``accuracy`` of ``benchmarks/results/pattern_speed.json`` is written
(the speed script writes the rest; ``pattern_speed.py --render`` rebuilds the .md).

Usage::

    python benchmarks/pattern_accuracy.py --train-size 3000 --finetune-epochs 1
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from torch.utils.data import Subset

from edgeslim.bench.accuracy import evaluate_model, primary_value
from edgeslim.bench.staircase import cpu_model
from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.methods import apply_
from edgeslim.data import load_dataset, make_loader
from edgeslim.models.saved import load_saved
from edgeslim.models.shipped import WEIGHTS_DIR
from edgeslim.sparsity import RTossConfig, SharedPatternConfig, sparsity_of, squashed
from edgeslim.sparsity.shared import is_pattern_conv
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer

OUT = Path(__file__).parent / "results" / "pattern_speed.json"


def kinds(k: int) -> dict:
    return {
        f"R-TOSS {k}EP (per kernel)": RTossConfig(entries=k),
        f"shared {k}-tap, 4 groups": SharedPatternConfig(k, groups=4),
    }


def update(section: str, value) -> dict:
    res = json.loads(OUT.read_text()) if OUT.exists() else {}
    res[section] = value
    write_text_atomic(OUT, json.dumps(res, indent=2) + "\n")
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-size", type=int, default=3000)
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--taps", default="3,2")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pre = sorted(WEIGHTS_DIR.glob("resnet18_small_half-signs-*"))[0]
    lm = load_saved(pre)
    test_ds = load_dataset("signs", "test")
    test = make_loader(Subset(test_ds, range(min(args.test_size, len(test_ds)))), 250, False)
    train_ds = load_dataset("signs", "train", augment=True)
    order = torch.randperm(len(train_ds), generator=torch.Generator().manual_seed(12345))
    train = Subset(train_ds, order[: args.train_size].tolist())
    x = next(iter(test))[0][:1]
    t0 = time.perf_counter()
    rows = [{"model": "dense", "top1": round(primary_value(evaluate_model(lm.model, test)), 4)}]
    print(rows[-1], flush=True)
    for k in (int(v) for v in args.taps.split(",")):
        for name, cfg in kinds(k).items():
            model, rec = apply_(
                copy.deepcopy(lm.model),
                cfg,
                filter_fn=lambda m, _n: is_pattern_conv(m),
                calib=[x],
            )
            row = {"model": name, "sparsity_3x3": round(sparsity_of(model), 4)}
            row["one_shot_top1"] = round(primary_value(evaluate_model(squashed(model), test)), 4)
            torch.manual_seed(0)
            tcfg = TrainConfig(epochs=args.finetune_epochs, lr=0.01, batch_size=64, seed=0)
            t1 = time.perf_counter()
            Trainer(model, tcfg, progress=False).fit(train, None)
            row["finetuned_top1"] = round(primary_value(evaluate_model(squashed(model), test)), 4)
            row["finetune_seconds"] = round(time.perf_counter() - t1, 1)
            rows.append(row)
            print(row, flush=True)
    update(
        "accuracy",
        {
            "dense_model": pre.name,
            "cpu": cpu_model(),
            "threads": args.threads,
            "train_size": args.train_size,
            "finetune_epochs": args.finetune_epochs,
            "test_size": args.test_size,
            "seconds": round(time.perf_counter() - t0, 1),
            "command": "python benchmarks/pattern_accuracy.py "
            f"--train-size {args.train_size} --finetune-epochs {args.finetune_epochs}",
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
