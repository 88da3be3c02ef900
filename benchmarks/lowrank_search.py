"""The rank search (MILP over measured ORT latency and damage) against channel pruning.

Run through ``benchmarks/lowrank.py --search speed|accuracy`` (or directly):

* ``speed``: ResNet-18 / VGG-16-BN at 224 (random weights: the zoo ships no ImageNet
  weights, so the damage is the relative error of the output on random inputs and
  only the speed is meaningful), decomposed to ``--macs`` of their MACs by
  ``decompose --search`` (spatial SVD), beside the uniform-ratio spatial SVD and
  channel pruning at the same MACs (the budget search, ``prune --search``; its
  damage: cross-entropy against the dense model's own predictions on random
  inputs). All are exported to ONNX and timed FP32 on ONNX Runtime in ONE
  interleaved loop at batch 1.
* ``accuracy``: the shipped signs-trained ResNet-18-small (32x32) at ``--macs``:
  rank search (damage: validation-loss increase), channel pruning (budget search),
  and AIMET's recipe (spatial SVD then channel pruning, together at ``--macs``),
  each fine-tuned by distillation from the dense model on ``--train-size`` images.

Partial results are written after every row (``--out`` .json and .md), and a rerun
skips the rows already there.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import Subset

from edgeslim.bench.latency import measure, onnx_target
from edgeslim.bench.machine import machine_info, machine_line
from edgeslim.bench.macs import count_macs, count_params
from edgeslim.core.atomic import write_text_atomic
from edgeslim.export.onnx import export_onnx
from edgeslim.lowrank import RankRule, config_for
from edgeslim.models.spec import LoadedModel, load_model
from edgeslim.prune.config import PruneConfig
from edgeslim.search.prune_target import search_to_target
from edgeslim.workflows.decompose import data_damage, decompose
from edgeslim.workflows.lowrank_measured import MeasuredRule
from edgeslim.workflows.rank_search import RankSearch, output_damage

OUT = Path(__file__).parent / "results"


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def save(path: Path, res: dict, md: str) -> None:
    write_text_atomic(path, json.dumps(res, indent=2, default=str) + "\n")
    write_text_atomic(path.with_suffix(".md"), md)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def rank_searched(
    lm: LoadedModel, macs: float, dmg, timing: MeasuredRule, method="spatial", fill: float = 0.0
):
    t0 = time.perf_counter()
    new, info = decompose(
        lm,
        config_for(method, RankRule(ratio=1.0)),
        rank_search=RankSearch(target_macs=macs, timing=timing, fill=fill),
        damage=dmg,
    )
    s = info["search"]
    chosen = {n: t["chosen"] for n, t in s["layers"].items()}
    faster = sum(o["faster"] for t in s["layers"].values() for o in t["options"][1:])
    total = sum(len(t["options"]) - 1 for t in s["layers"].values())
    return new, {
        "search_s": round(time.perf_counter() - t0, 1),
        "chosen": chosen,
        "candidates_faster": f"{faster}/{total}",
        "predicted_layer_ms": s["predicted"].get("latency_ms"),
        "dense_layer_ms": s["base"]["latency_ms"],
        "fill": s.get("fill"),
    }


def pruned(lm: LoadedModel, macs_abs: int, batches, threads: int):
    t0 = time.perf_counter()
    res = search_to_target(
        lm.model,
        lm.require_input(),
        PruneConfig(target_macs=int(macs_abs)),
        batches,
        threads=threads,
        progress=False,
    )
    return res.model, {"search_s": round(time.perf_counter() - t0, 1), "met": res.notes.get("met")}


def pseudo_labelled(model, spec, n: int, batch: int):
    """Random inputs labelled with the dense model's own predictions (no ImageNet here)."""
    out = []
    with torch.no_grad():
        for i in range(n):
            x = spec.example(batch=batch, seed=100 + i)
            out.append((x, model.eval()(x).argmax(1)))
    return out


# ----------------------------------------------------------------------------- speed


def speed(args) -> None:
    path = Path(args.out or OUT / "lowrank_search.speed.json")
    res = load(path)
    res.setdefault("speed", {})
    timing = MeasuredRule(runs=args.layer_runs, threads=args.threads)
    for name in args.models.split(","):
        if name in res["speed"] and not args.force:
            continue
        lm = load_model(name)
        spec = lm.require_input()
        x = spec.example(batch=1)
        macs0 = count_macs(lm.model, x)[0]
        models: dict[str, tuple] = {"dense": (lm.model, {})}
        dmg = output_damage([spec.example(batch=1, seed=i) for i in range(args.damage_inputs)])
        new, extra = rank_searched(lm, args.macs, dmg, timing, fill=args.fill)
        models["rank search (spatial)"] = (new.model, extra)
        print(name, "rank search", extra["search_s"], "s", flush=True)
        new, info = decompose(lm, config_for("spatial", RankRule(ratio=1.0)), target_macs=args.macs)
        models["uniform ratio (spatial)"] = (new.model, {"ratio": info["search"]["ratio"]})
        if not args.no_prune:
            batches = pseudo_labelled(lm.model, spec, 2, 2)
            models["channel pruning (search)"] = pruned(
                lm, args.macs * macs0, batches, args.threads
            )
            print(name, "pruned", models["channel pruning (search)"][1], flush=True)
        rows = []
        with tempfile.TemporaryDirectory() as d:
            targets = []
            for i, (label, (model, ex)) in enumerate(models.items()):
                exp = export_onnx(model, lm.input, Path(d) / f"m{i}.onnx")
                targets.append(onnx_target(exp.path, label, lm.input))
                rows.append(
                    {
                        "model": label,
                        "params": count_params(model),
                        "macs": count_macs(model, x)[0],
                        "parity": exp.max_abs_diff,
                        **ex,
                    }
                )
            rep = measure(targets, (1,), runs=args.runs, threads=args.threads, progress=False)
        for row in rows:
            row["ort_b1_ms"] = rep.median(row["model"], 1)
            row["speedup"] = rep.median("dense", 1) / row["ort_b1_ms"]
        res["speed"][name] = {
            "rows": rows,
            "runs": args.runs,
            "layer_runs": args.layer_runs,
            "threads": args.threads,
            "uptime": uptime(),
            "input": list(spec.shape),
        }
        res["machine"] = machine_info(args.threads)
        save(path, res, markdown(res))
        print(markdown(res), flush=True)


# -------------------------------------------------------------------------- accuracy


def accuracy(args) -> None:
    from edgeslim.bench.accuracy import evaluate_model, primary_value
    from edgeslim.data import load_dataset, make_loader
    from edgeslim.distill.losses import LossSpec
    from edgeslim.models.saved import load_saved
    from edgeslim.models.shipped import WEIGHTS_DIR
    from edgeslim.train.config import TrainConfig
    from edgeslim.workflows.distill import distill_model
    from edgeslim.workflows.rank_search import first_batches

    torch.set_num_threads(1)
    path = Path(args.out or OUT / "lowrank_search.accuracy.json")
    res = load(path)
    data = "signs"
    shipped = sorted(WEIGHTS_DIR.glob("resnet18_small_half-signs-*"))[0]
    teacher = load_saved(Path(args.teacher) if args.teacher else shipped)
    # the shipped ResNet-18-small keeps the plain key (older files); others by name
    key = "accuracy" if not args.teacher else f"accuracy:{teacher.name}"
    acc = res.setdefault(key, {"rows": {}})
    acc["model"] = teacher.name
    spec = teacher.require_input()
    x = spec.example(batch=1)
    macs0 = count_macs(teacher.model, x)[0]
    test = make_loader(load_dataset(data, "test"), 256, shuffle=False)
    val = first_batches(make_loader(load_dataset(data, "val"), 128, shuffle=False), 4)
    if "dense_top1" not in acc:
        acc["dense_top1"] = primary_value(evaluate_model(teacher.model, test))
    train = load_dataset(data, "train", augment=True)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(12345))
    sub = Subset(train, order[: args.train_size].tolist())
    timing = MeasuredRule(runs=args.layer_runs, threads=args.threads)
    dmg = data_damage(data)

    seeds = [int(v) for v in args.seeds.split(",")]

    def finish(label: str, model, extra: dict) -> None:
        before = primary_value(evaluate_model(model, test))
        t0 = time.perf_counter()
        afters = []
        for seed in seeds:  # the seed sets the fine-tune's data order (same start model)
            student = LoadedModel(copy.deepcopy(model), teacher.source, teacher.input, label)
            cfg = TrainConfig(
                epochs=args.epochs, lr=args.lr, batch_size=64, seed=seed, amp=args.amp
            )
            distill_model(
                student, [teacher], data, "kd", LossSpec(), cfg, train_data=sub, progress=False
            )
            afters.append(primary_value(evaluate_model(student.model, test)))
        after = statistics.mean(afters)
        acc["rows"][label] = {
            "macs": count_macs(model, x)[0],
            "macs_fraction": count_macs(model, x)[0] / macs0,
            "params": count_params(model),
            "top1_before_ft": before,
            "top1_after_ft": after,
            "top1_after_ft_seeds": dict(zip(seeds, afters, strict=True)),
            "top1_after_ft_std": statistics.stdev(afters) if len(afters) > 1 else 0.0,
            "drop_points": 100 * (acc["dense_top1"] - after),
            "finetune_s": round((time.perf_counter() - t0) / len(seeds), 1),
            "cpu": machine_info(args.threads)["cpu"],
            "uptime": uptime(),
            **extra,
        }
        acc.update(
            epochs=args.epochs,
            train_size=args.train_size,
            lr=args.lr,
            amp=args.amp,
            uptime=uptime(),
        )
        res["machine"] = machine_info(args.threads)
        save(path, res, markdown(res))
        print(label, acc["rows"][label], flush=True)

    rows = acc["rows"]
    want = set(args.rows.split(","))
    tag = f", fill {args.fill:g}" if args.fill else ""
    if "rank" in want and f"rank search (spatial){tag}" not in rows:
        new, extra = rank_searched(teacher, args.macs, dmg, timing, fill=args.fill)
        finish(f"rank search (spatial){tag}", new.model, extra)
    if "control" in want and "dense, same fine-tune (control)" not in rows:
        finish("dense, same fine-tune (control)", teacher.model, {})
    if "prune" in want and "channel pruning (search)" not in rows:
        model, extra = pruned(teacher, args.macs * macs0, val, args.threads)
        finish("channel pruning (search)", model, extra)
    aimet = f"spatial SVD + channel pruning (AIMET's recipe){tag}"
    if "aimet" in want and aimet not in rows:
        # AIMET: spatial SVD first, then channel pruning to the final MACs
        new, extra = rank_searched(teacher, args.svd_macs, dmg, timing, fill=args.fill)
        svd_fraction = count_macs(new.model, x)[0] / macs0
        model, extra2 = pruned(new, args.macs * macs0, val, args.threads)
        finish(
            aimet,
            model,
            {**extra, "svd_macs": args.svd_macs, "svd_fraction": svd_fraction, "prune": extra2},
        )


# --------------------------------------------------------------------------- report


def markdown(res: dict) -> str:
    lines = ["# Rank search (MILP over measured ORT latency and damage) vs channel pruning", ""]
    cpus = {s.get("cpu") for s in res.get("speed", {}).values() if s.get("cpu")}
    for key, acc in res.items():
        if key.startswith("accuracy"):
            cpus |= {r["cpu"] for r in acc.get("rows", {}).values() if r.get("cpu")}
    if res.get("machine") and len(cpus) <= 1:
        lines += [machine_line(res["machine"]), ""]
    elif cpus:
        lines += [f"Measured on {len(cpus)} CPU kinds: each section and row names its own.", ""]
    for name, s in res.get("speed", {}).items():
        lines += [
            f"## {name} at {tuple(s['input'])}: FP32 ONNX Runtime, batch 1, "
            f"{s['threads']} thread(s), {s['runs']} interleaved runs",
            "",
            (f"CPU: {s['cpu']}. " if s.get("cpu") else "")
            + f"Load: `{s['uptime']}` (other jobs share this CPU; compare rows within a run).",
            "Random weights (no ImageNet here): speed only.",
            "",
            "| model | params | MACs (fraction) | ORT ms | speedup | search s | notes |",
            "|---|---|---|---|---|---|---|",
        ]
        m0 = s["rows"][0]["macs"]
        for r in s["rows"]:
            note = r.get("candidates_faster", "")
            note = f"{note} candidates measured faster" if note else ""
            if "ratio" in r:
                note = f"ratio {r['ratio']:.3f}"
            lines.append(
                f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e9:.3f}G "
                f"({r['macs'] / m0:.2f}) | {r['ort_b1_ms']:.2f} | {r['speedup']:.2f}x "
                f"| {r.get('search_s', '')} | {note} |"
            )
        lines.append("")
    for key, acc in res.items():
        if not key.startswith("accuracy") or not acc.get("rows"):
            continue
        lines += [
            f"## {acc.get('model', 'ResNet-18-small')} (32x32) on signs: top-1 after a "
            "distillation fine-tune",
            "",
            f"Dense top-1 {100 * acc['dense_top1']:.2f}%. Fine-tune: KD from the dense model, "
            f"{acc.get('epochs')} epochs on {acc.get('train_size')} training images, lr "
            f"{acc.get('lr')}{', bf16 autocast' if acc.get('amp') else ''}, torch 1 thread. "
            f"Load: `{acc.get('uptime')}`.",
            "AIMET's reference: spatial SVD + channel pruning at 50% MACs on ImageNet "
            "ResNet-18, 69.76 -> 68.56 (-1.2 points); only the drop is comparable.",
            "",
            "| method | MACs fraction | top-1 before FT | top-1 after FT (per seed) "
            "| drop (points) | CPU |",
            "|---|---|---|---|---|---|",
        ]
        for label, r in acc["rows"].items():
            svd = f" (SVD to {r['svd_fraction']:.3f} first)" if "svd_fraction" in r else ""
            seeds = r.get("top1_after_ft_seeds") or {"0": r["top1_after_ft"]}
            after = f"{100 * r['top1_after_ft']:.2f}"
            if len(seeds) > 1:
                after += " (" + ", ".join(f"{100 * v:.2f}" for v in seeds.values()) + ")"
            lines.append(
                f"| {label}{svd} | {r['macs_fraction']:.3f} | {100 * r['top1_before_ft']:.2f} "
                f"| {after} | {r['drop_points']:+.2f} | {r.get('cpu', '')} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def report(args) -> None:
    """Merge the parts' partial files into ``lowrank_search.json`` and ``.md``."""
    res: dict = {}
    for part in sorted(OUT.glob("lowrank_search.*.json")):  # speed*, accuracy
        got = load(part)
        cpu = (got.get("machine") or {}).get("cpu", "")
        for name, sp in got.get("speed", {}).items():  # one section per model and CPU
            res.setdefault("speed", {})[f"{name} on {cpu}" if cpu else name] = {**sp, "cpu": cpu}
        for key in [k for k in got if k.startswith("accuracy")]:
            # later files (accuracy_*) add or replace rows
            acc = res.setdefault(key, {"rows": {}})
            new_rows = {k: {"cpu": cpu, **r} for k, r in got[key]["rows"].items()}
            rows = {**acc["rows"], **new_rows}
            acc.update(got[key])
            acc["rows"] = rows
        res["machine"] = got.get("machine") or res.get("machine")  # the last file's
    res["command"] = "nice -n 10 python benchmarks/lowrank.py --search speed|accuracy|report"
    notes = OUT / "lowrank_search.notes.md"  # the reading of the numbers, by hand
    md = markdown(res) + ("\n" + notes.read_text() if notes.exists() else "")
    save(OUT / "lowrank_search.json", res, md)
    print(md)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=("speed", "accuracy", "report"))
    ap.add_argument("--models", default="resnet18,vgg16_bn")
    ap.add_argument("--macs", type=float, default=0.5)
    ap.add_argument("--svd-macs", type=float, default=0.7, help="AIMET row: SVD first to this")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--layer-runs", type=int, default=10)
    ap.add_argument("--damage-inputs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--train-size", type=int, default=3000)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--no-prune", action="store_true", help="speed: no channel-pruning row")
    ap.add_argument(
        "--rows", default="rank,prune,aimet", help="accuracy rows to run (and: control)"
    )
    ap.add_argument("--seeds", default="0", help="accuracy: fine-tune seeds, e.g. 0,1,2")
    ap.add_argument("--amp", action="store_true", help="accuracy: bf16 autocast fine-tunes")
    ap.add_argument(
        "--teacher", default=None, help="accuracy: a saved signs model (default: the shipped one)"
    )
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--fill", type=float, default=0.0, help="rank search: spend at least this of the budget"
    )
    args = ap.parse_args(argv)
    print("load:", os.getloadavg(), flush=True)
    {"speed": speed, "accuracy": accuracy, "report": report}[args.part](args)


if __name__ == "__main__":
    main()
