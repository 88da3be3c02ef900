"""Regenerate the pre-trained default model that ``edgeslim compress`` ships with.

Trains the model of ``edgeslim/recipe/default.yaml`` on its data with its ``pretrain``
settings (deterministic by seed on a given CPU), evaluates it, rounds the conv and linear
weights to fp16 (BN statistics stay fp32), evaluates the rounded copy again, and writes it
to ``edgeslim/models/weights/<cache key>`` where :func:`edgeslim.workflows.train.pretrained`
finds it. ``--long N`` also trains an N-epoch run of the same model, to show the shipped
one is converged. Results go to ``benchmarks/results/default_model.{json,md}``.

    python benchmarks/train_default_model.py [--long 60]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import safetensors.torch
import torch

from edgeslim.bench.accuracy import evaluate_model
from edgeslim.bench.machine import machine_info, machine_line
from edgeslim.cli.compress import DEFAULT_RECIPE
from edgeslim.data import load_dataset, make_loader
from edgeslim.models.saved import WEIGHTS, load_saved
from edgeslim.models.shipped import WEIGHTS_DIR
from edgeslim.recipe.loader import load_recipe
from edgeslim.tasks import get_task
from edgeslim.workflows.train import pretrained_path, train_model

RESULTS = Path(__file__).resolve().parent / "results"


def _test_top1(path: Path, data: str) -> float:
    lm = load_saved(path)
    task = get_task(lm.meta["task"])
    loader = make_loader(load_dataset(data, "test"), 256, shuffle=False)
    return float(evaluate_model(lm.model, loader, task)[task.primary])


def _round_fp16(path: Path) -> None:
    sd = safetensors.torch.load_file(str(path / WEIGHTS))
    half = {k: (v.half() if v.is_floating_point() and v.dim() >= 2 else v) for k, v in sd.items()}
    safetensors.torch.save_file(half, str(path / WEIGHTS))


def _train(spec: str, data: str, cfg, out: Path) -> tuple[float, float]:
    t0 = time.perf_counter()
    train_model(spec, data, cfg, out, progress=False)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return time.perf_counter() - t0, _test_top1(out, data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--long", type=int, default=0, help="also train this many epochs")
    args = ap.parse_args()
    torch.set_num_threads(2)
    r = load_recipe(DEFAULT_RECIPE).recipe
    cfg = r.pretrain.train_config(r.seed)
    key = pretrained_path(r.model, r.data, cfg).name
    row: dict = {
        "model": r.model,
        "data": r.data,
        "key": key,
        "machine": machine_line(machine_info()),
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / key
        secs, top1 = _train(r.model, r.data, cfg, out)
        _round_fp16(out)
        row.update(epochs=cfg.epochs, train_s=round(secs), test_top1=top1)
        row["test_top1_fp16"] = _test_top1(out, r.data)
        dest = WEIGHTS_DIR / key
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(out, dest)
        print(f"shipped {dest}: top-1 {top1:.2%} (fp16 copy {row['test_top1_fp16']:.2%})")
        if args.long:
            long_cfg = replace(cfg, epochs=args.long)
            secs, top1 = _train(r.model, r.data, long_cfg, Path(tmp) / "long")
            row["long"] = {"epochs": args.long, "train_s": round(secs), "test_top1": top1}
            print(f"{args.long}-epoch run: top-1 {top1:.2%}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "default_model.json").write_text(json.dumps(row, indent=2) + "\n")
    lines = [
        "# The shipped default model",
        "",
        f"`{r.model}` on `{r.data}`, {cfg.epochs} epochs (`{key}`); {row['machine'].rstrip('.')}.",
        "",
        "| run | epochs | train time | test top-1 |",
        "|---|---|---|---|",
        f"| shipped (fp32) | {cfg.epochs} | {row['train_s']} s | {top1_fmt(row['test_top1'])} |",
        f"| shipped, fp16 weights | {cfg.epochs} | | {top1_fmt(row['test_top1_fp16'])} |",
    ]
    if "long" in row:
        lg = row["long"]
        lines.append(
            f"| long run | {lg['epochs']} | {lg['train_s']} s | {top1_fmt(lg['test_top1'])} |"
        )
    (RESULTS / "default_model.md").write_text("\n".join(lines) + "\n")


def top1_fmt(v: float) -> str:
    return f"{100 * v:.2f}%"


if __name__ == "__main__":
    main()
