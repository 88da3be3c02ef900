"""Distillation on the built-in ``signs`` data: a ResNet-56 teacher, a half-width ResNet-20
student trained with and without KD (same epochs, 3 seeds), plus multi-teacher and
feature (FitNets) / attention-transfer distillation.

Every run is resumable: results are appended to the JSON after each run and a rerun
skips finished runs; each run checkpoints every epoch under ``$EDGESLIM_CACHE``.

Usage (the numbers in benchmarks/results/distillation.md come from exactly this)::

    python benchmarks/distill_signs.py --epochs 10 --teacher-epochs 15 \
        --seeds 0,1,2 --extra multi,feature,at

Training runs in bf16 autocast + channels_last (``--fp32`` to disable), about 2x faster
on this CPU; the full-data ResNet-56 teacher is then the one ``pruning_accuracy.py`` uses.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset

from edgeslim.bench.accuracy import evaluate_model
from edgeslim.bench.macs import count_macs, count_params
from edgeslim.core.paths import cache_dir
from edgeslim.data import dataset_info, load_dataset, make_loader
from edgeslim.distill.losses import LossSpec
from edgeslim.models.inputs import InputSpec
from edgeslim.models.saved import is_saved_model, load_saved, save_model
from edgeslim.models.spec import load_model
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer
from edgeslim.workflows.distill import distill_model
from edgeslim.workflows.train import pretrained, pretrained_path

DATA = "signs"
STUDENT = "resnet20_half"
RESULTS = Path(__file__).parent / "results"
LOSSES = {  # run kind -> (losses, teachers)
    "ce": (None, ()),
    "kd": ("kd", ("resnet56",)),
    "multi": ("multi", ("resnet56", "resnet20")),
    "feature": ("feature", ("resnet56",)),
    "at": ("at", ("resnet56",)),
}
SECOND_TEACHER_EPOCHS = 8  # resnet20 at the demo's schedule (shared cache entry)
FAST = {"amp": True, "channels_last": True}  # bf16 autocast + NHWC on CPUs with native bf16


def wait_for_teacher(spec: str, cfg: TrainConfig, max_wait_s: float = 3600) -> None:
    """If another process is training this cache entry right now, wait for it (no duplicate)."""
    path = pretrained_path(spec, DATA, cfg)
    t0 = time.time()
    while (path / "checkpoints").is_dir() and not (path / "edgeslim_model.json").is_file():
        newest = max((f.stat().st_mtime for f in (path / "checkpoints").iterdir()), default=0)
        if time.time() - newest > 1800 or time.time() - t0 > max_wait_s:
            break  # stale: nobody is training it any more
        print(f"waiting for {spec} being trained by another process ...", flush=True)
        time.sleep(60)


def train_subset(n: int, augment: bool) -> Dataset:
    """The first ``n`` images of a fixed permutation of the train split (all when n == 0)."""
    ds = load_dataset(DATA, "train", augment=augment)
    if not n:
        return ds
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(12345))
    return Subset(ds, order[:n].tolist())


def teacher(spec: str, epochs: int, train_size: int, fast: dict):
    """A full-data teacher from the shared cache, or one trained on the subset (cached here)."""
    cfg = TrainConfig(epochs=epochs, **fast)
    if not train_size:
        wait_for_teacher(spec, cfg)
        return pretrained(spec, DATA, cfg, progress=True)
    path = cache_dir("distill-bench") / f"teacher-{spec}-n{train_size}-{cfg.fingerprint()}"
    if is_saved_model(path):
        return load_saved(path)
    torch.manual_seed(0)
    lm = load_model(spec, num_classes=dataset_info(DATA).num_classes)
    lm.input = InputSpec((1, 3, 32, 32))
    hist = Trainer(lm.model, cfg, ckpt_dir=path / "checkpoints").fit(
        train_subset(train_size, augment=True), load_dataset(DATA, "val")
    )
    test = evaluate_model(lm.model, make_loader(load_dataset(DATA, "test"), 256, False))
    lm.meta = {"train_config": asdict(cfg), "history": hist, "test_top1": test["top1"]}
    save_model(lm, path)
    return lm


def student_config(args, seed: int) -> TrainConfig:
    return TrainConfig(epochs=args.epochs, augment=False, seed=seed, **args.fast)


def run_one(kind: str, seed: int, args, teachers: dict) -> dict:
    losses, tnames = LOSSES[kind]
    classes = dataset_info(DATA).num_classes
    torch.manual_seed(seed)  # the student's initial weights
    lm = load_model(STUDENT, num_classes=classes)
    lm.input = InputSpec((1, 3, 32, 32))
    cfg = student_config(args, seed)
    run_dir = cache_dir("distill-bench") / f"{kind}-s{seed}-n{args.train_size}-{cfg.fingerprint()}"
    t0 = time.time()
    if losses is None:
        hist = Trainer(lm.model, cfg, ckpt_dir=run_dir / "checkpoints").fit(
            train_subset(args.train_size, augment=False), load_dataset(DATA, "val")
        )
        test = evaluate_model(lm.model, make_loader(load_dataset(DATA, "test"), 256, False))
        top1 = test["top1"]
    else:
        spec = LossSpec(temperature=args.temperature, alpha=args.alpha)
        ts = [teachers[t] for t in tnames]
        train = train_subset(args.train_size, augment=False)
        res = distill_model(lm, ts, DATA, losses, spec, cfg, run_dir, train_data=train)
        hist, top1 = res.history, res.test_top1
    return {
        "kind": kind,
        "seed": seed,
        "test_top1": top1,
        "best_val_top1": max(h["val_top1"] for h in hist),
        "final_val_top1": hist[-1]["val_top1"],
        "final_train_loss": hist[-1]["train_loss"],
        "seconds": time.time() - t0,
        "epochs": args.epochs,
    }


def summarize(results: dict) -> dict:
    by_kind: dict[str, list[float]] = {}
    for r in results["runs"]:
        by_kind.setdefault(r["kind"], []).append(r["test_top1"])
    return {
        k: {
            "mean": statistics.mean(v),
            "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "n": len(v),
            "values": v,
        }
        for k, v in by_kind.items()
    }


def write_markdown(results: dict, path: Path) -> None:
    s = results["summary"]
    t = results["teachers"]
    lines = [
        "# Distillation on `signs` (ResNet-56 teacher -> half-width ResNet-20 student)",
        "",
        f"Generated by `benchmarks/distill_signs.py`; command: `{results['command']}`.",
        "",
        "| model | params | MMACs | test top-1 |",
        "|---|---:|---:|---:|",
    ]
    for name, m in t.items():
        lines.append(
            f"| teacher {name} ({m['epochs']} ep) | {m['params']:,} | {m['macs'] / 1e6:.1f} | "
            f"{100 * m['test_top1']:.2f}% |"
        )
    st = results["student"]
    lines.append(f"| student {STUDENT} | {st['params']:,} | {st['macs'] / 1e6:.1f} | see below |")
    n = results["settings"]["train_size"]
    lines += [
        "",
        (
            f"Training images: {n} (a fixed subset of the train split, the same for every run; "
            "teachers trained on it with augmentation). "
            if n
            else "Training images: the whole 10,000-image train split. "
        )
        + "Validation and test: the full 2000-image splits.",
        "",
        f"Student runs: {results['settings']['epochs']} epochs, SGD lr 0.1 cosine, batch 128, "
        f"{'fp32' if results['settings'].get('fp32') else 'bf16 autocast + channels_last'}, "
        f"no augmentation, T={results['settings']['temperature']}, "
        f"alpha={results['settings']['alpha']}; seeds set the student's init and data order.",
        "",
        "| student trained with | seeds | test top-1 mean | std | per seed |",
        "|---|---:|---:|---:|---|",
    ]
    names = {
        "ce": "cross-entropy only (no KD)",
        "kd": "Hinton KD from ResNet-56",
        "multi": "multi-teacher KD (ResNet-56 + ResNet-20, averaged)",
        "feature": "FitNets hints (layer1-3, 1x1 adapters) + CE",
        "at": "attention transfer (layer1-3) + CE",
    }
    for k in ("ce", "kd", "multi", "feature", "at"):
        if k in s:
            v = s[k]
            per = ", ".join(f"{100 * x:.2f}" for x in v["values"])
            lines.append(
                f"| {names[k]} | {v['n']} | {100 * v['mean']:.2f}% | {100 * v['std']:.2f} | {per} |"
            )
    if "ce" in s and "kd" in s:
        d = 100 * (s["kd"]["mean"] - s["ce"]["mean"])
        top1 = {(r["kind"], r["seed"]): r["test_top1"] for r in results["runs"]}
        seeds = sorted(r["seed"] for r in results["runs"] if r["kind"] == "kd")
        pairs = [100 * (top1["kd", k] - top1["ce", k]) for k in seeds if ("ce", k) in top1]
        wins = sum(x > 0 for x in pairs)
        lines += [
            "",
            f"KD - no KD: **{d:+.2f} points** (mean over {s['kd']['n']} seeds); per seed, same "
            f"init and data order: {', '.join(f'{x:+.2f}' for x in pairs)} "
            f"(KD ahead on {wins} of {len(pairs)}).",
        ]
        first = seeds[0]
        extra = [k for k in ("multi", "feature", "at") if (k, first) in top1]
        if extra:
            lines.append(
                f"Seed {first} alone: no KD {100 * top1['ce', first]:.2f}, KD "
                f"{100 * top1['kd', first]:.2f}, "
                + ", ".join(f"{k} {100 * top1[k, first]:.2f}" for k in extra)
                + "."
            )
    lines += [
        "",
        "Notes:",
        "",
        "- Students train without augmentation so that the frozen teacher sees exactly the",
        "  same images every epoch; its logits are then memoised (`edgeslim.distill.memo`),",
        "  which is exact and makes a KD run cost the same as a plain run. Feature and",
        "  attention losses need the live teacher every step.",
        "- `--train-size` trains every model (teachers included) on the same fixed subset,",
        "  a data-limited regime chosen to fit a shared 2-core machine; test accuracy is on",
        "  the full 2000-image test split.",
        "",
        "Per-run records (seconds include evaluation) are in `distillation.json`.",
    ]
    bert = path.with_name("distillation.synthtext.md")  # from benchmarks/distill_synthtext.py
    if bert.is_file():
        lines += ["", bert.read_text()]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--teacher-epochs", type=int, default=6)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--extra", default="multi,feature,at", help="single-seed extra kinds")
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.9)
    p.add_argument(
        "--train-size", type=int, default=0, help="train on a fixed subset (0: all 10k images)"
    )
    p.add_argument("--fp32", action="store_true", help="train in fp32 NCHW (slower)")
    p.add_argument(
        "--markdown-only", action="store_true", help="rewrite distillation.md from the JSON"
    )
    args = p.parse_args()
    if args.markdown_only:
        write_markdown(
            json.loads((RESULTS / "distillation.json").read_text()), RESULTS / "distillation.md"
        )
        return
    args.fast = {} if args.fp32 else FAST
    torch.set_num_threads(2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "distillation.json"
    settings = {k: v for k, v in vars(args).items() if k != "fast"}
    results = json.loads(out.read_text()) if out.is_file() else {}
    if results.get("settings") != settings:
        results = {"settings": settings, "runs": []}
    results["command"] = "python benchmarks/distill_signs.py " + " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
        for k, v in settings.items()
        if v is not False
    )
    seeds = [int(s) for s in args.seeds.split(",")]
    plan = [(k, s) for k in ("ce", "kd") for s in seeds]  # baselines first: no teacher needed
    plan += [(k, seeds[0]) for k in args.extra.split(",") if k]
    teachers: dict = {}
    done = {(r["kind"], r["seed"]) for r in results["runs"]}
    for kind, seed in plan:
        if (kind, seed) in done:
            continue
        for t in LOSSES[kind][1]:
            if t not in teachers:
                full_data_second = t != "resnet56" and not args.train_size
                ep = SECOND_TEACHER_EPOCHS if full_data_second else args.teacher_epochs
                fast = {} if full_data_second else args.fast  # the cached fp32 ResNet-20
                teachers[t] = teacher(t, ep, args.train_size, fast)
                teachers[t].meta.setdefault("epochs", ep)
        print(f"=== {kind} seed {seed}", flush=True)
        results["runs"].append(run_one(kind, seed, args, teachers))
        results["summary"] = summarize(results)
        if teachers:
            results["teachers"] = {
                n: {
                    "epochs": lm.meta.get("train_config", {}).get("epochs"),
                    "test_top1": lm.meta.get("test_top1"),
                    "params": count_params(lm.model),
                    "macs": count_macs(lm.model, torch.randn(1, 3, 32, 32))[0],
                }
                for n, lm in teachers.items()
            }
        s = load_model(STUDENT, num_classes=dataset_info(DATA).num_classes).model
        results["student"] = {
            "params": count_params(s),
            "macs": count_macs(s, torch.randn(1, 3, 32, 32))[0],
        }
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        if "teachers" in results:
            write_markdown(results, RESULTS / "distillation.md")
        print(json.dumps(results["runs"][-1]), flush=True)
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
