"""Distillation on ``textlogic``: a 6-layer BERT teacher -> 2-layer students, four ways,
plus head and FFN pruning of the teacher, measured (issue 16, "Distillation").

Arms (each trains for the same number of epochs over the same number of samples):

- ``ce``: a randomly initialised 2-layer student, cross-entropy on the labels only;
- ``distilbert``: DistilBERT init (teacher layers 0 and 3: one layer out of three) and
  DistilBERT's loss without MLM: Hinton KD (T=2, alpha=0.5) + cosine on hidden states;
- ``tinybert``: a randomly initialised student, TinyBERT's two stages: general
  distillation on an unlabeled corpus (``textlogic``'s :func:`unlabeled_ids`), then the
  task stage: intermediate layers, then soft cross-entropy (t=1). No phase reads a label;
- ``distilbert+tinybert``: DistilBERT init, then the same TinyBERT stages.

Then the teacher's heads and FFN are pruned by 50% (structured, L1), fine-tuned briefly,
and every model is timed on ONNX Runtime (interleaved). Results are written after every
run (``--report`` rewrites the markdown from the json alone).

Usage::

    PYTHONPATH=. nice -n 10 python benchmarks/distill_text.py --teacher-epochs 5 --epochs 3 \\
        --train-limit 4000 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset

from benchmarks.text_models import (
    TEACHER_LR,
    bert_config,
    new_bert,
    train_config,
    trained_teacher,
)
from benchmarks.text_models import test_top1 as top1_of
from edgeslim.core.atomic import atomic_path
from edgeslim.data import dataset_info, load_dataset
from edgeslim.data.text import TokenDataset
from edgeslim.distill.bert_init import distilbert_student
from edgeslim.distill.losses import LossSpec
from edgeslim.models.spec import LoadedModel
from edgeslim.train.trainer import Trainer
from edgeslim.workflows.distill import distill_model
from edgeslim.workflows.distill_report import stage_records
from edgeslim.workflows.tinybert import TinyBERTPlan, tinybert_distill

RESULTS = Path(__file__).parent / "results"
ARMS = ("ce", "distilbert", "tinybert", "distilbert+tinybert")
NAMES = {
    "ce": "(i) random init, cross-entropy only",
    "distilbert": "(ii) DistilBERT init + KD (T=2, alpha=0.5) + hidden cosine",
    "tinybert": "(iii) TinyBERT two stages (random init; general, intermediate, prediction)",
    "distilbert+tinybert": "(iv) DistilBERT init + TinyBERT two stages",
}


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Model name" in ln)
    except (OSError, StopIteration, subprocess.CalledProcessError):
        return platform.processor() or "unknown"


def small_config(vocab: int, labels: int, layers: int) -> dict:
    """For ``synthtext`` (the fallback): hidden 64, 4 heads, FFN 256 (4x cheaper to train)."""
    return {**bert_config(vocab, labels, layers), "hidden_size": 64, "intermediate_size": 256}


def get_teacher(data: str, epochs: int, lr: float, small: bool) -> LoadedModel:
    """``textlogic``: the shared cached teacher; else a 6-layer teacher trained here."""
    if not small:  # AdamW lr TEACHER_LR, bf16 autocast (text_models.trained_teacher)
        return trained_teacher(data, seed=0, epochs=epochs, progress=False)
    info = dataset_info(data)
    torch.manual_seed(0)
    lm = new_bert(small_config(info.vocab_size or 128, info.num_classes, 6), data, "bert-6L")
    cfg = replace(train_config(epochs, 0, lr=lr), warmup_epochs=0.5)
    Trainer(lm.model, cfg, progress=False, task=info.task).fit(load_dataset(data, "train"))
    return lm


def student_cfg(epochs: int, seed: int):
    # a short warm-up: one-epoch phases would otherwise be all warm-up
    return replace(train_config(epochs, seed), warmup_epochs=0.25)


def split_plan(epochs: int) -> TinyBERTPlan:
    """``epochs`` spread over general, intermediate and prediction (the rest to prediction)."""
    g = i = max(1, epochs // 3)
    return TinyBERTPlan(g, i, max(1, epochs - g - i), temperature=1.0)


def run_arm(arm, seed, teacher, data, task_data, corpus, epochs):
    torch.manual_seed(seed)
    info = dataset_info(data)
    cfg = student_cfg(epochs, seed)
    if arm.startswith("distilbert"):
        student = distilbert_student(teacher, keep=range(0, 6, 3))
    else:  # the teacher's widths, 2 layers
        config = {**teacher.source["config"], "num_hidden_layers": 2}
        student = new_bert(config, data, "bert-2L")
    if arm == "ce":
        Trainer(student.model, cfg, progress=False, task=info.task).fit(task_data)
        return student, top1_of(student.model, data)
    if arm == "distilbert":
        spec = LossSpec(temperature=2.0, alpha=0.5)
        res = distill_model(
            student, [teacher], data, "kd+cosine", spec, cfg, train_data=task_data, progress=False
        )
        return student, res.test_top1
    res = tinybert_distill(
        student, teacher, data, split_plan(epochs), cfg,
        corpus=corpus, train_data=task_data, progress=False,
    )  # fmt: skip
    return student, res.test_top1


def prune_teacher(teacher: LoadedModel, data: str, task_data, epochs: int, ratio: float):
    from edgeslim.prune import PruneConfig, prune

    model = copy.deepcopy(teacher.model).eval()
    example = teacher.require_input().example(batch=2)
    res = prune(model, example, PruneConfig(ratio=ratio, criterion="l1", round_to=1))
    lm = LoadedModel(res.model, teacher.source, teacher.input, f"bert-6L-pruned{ratio}")
    before = top1_of(lm.model, data)
    cfg = replace(train_config(epochs, 0, lr=5e-4), warmup_epochs=0.25)
    Trainer(lm.model, cfg, progress=False, task=dataset_info(data).task).fit(task_data)
    lm.model.eval()
    return lm, before, top1_of(lm.model, data)


def summarise(runs: list[dict]) -> dict:
    out = {}
    for arm in dict.fromkeys(r["arm"] for r in runs):
        v = [r["test_top1"] for r in runs if r["arm"] == arm]
        out[arm] = {
            "mean": statistics.mean(v),
            "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "values": v,
            "seconds_mean": statistics.mean(r["seconds"] for r in runs if r["arm"] == arm),
        }
    return out


def save(result: dict, stem: str) -> None:
    result["summary"] = summarise(result["runs"])
    with atomic_path(RESULTS / f"{stem}.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    with atomic_path(RESULTS / f"{stem}.md") as tmp:
        tmp.write_text(markdown(result))


def markdown(r: dict) -> str:
    s, t = r["summary"], r["teacher"]
    lines = [
        f"# Distillation on `{r['data']}`: 6-layer BERT teacher -> 2-layer students",
        "",
        f"Command: `{r['command']}`  ",
        f"CPU: {r['cpu']} (2 cores shared with other jobs; load average at start "
        f"{r['load_start']}, at the end {r.get('load_end', 'n/a')}); torch threads 1.",
        "",
        f"Teacher: 6 layers, hidden {t['config']['hidden_size']}, "
        f"{t['config']['num_attention_heads']} heads, FFN {t['config']['intermediate_size']}, "
        f"trained {t['epochs']} epochs (lr {t['lr']}) on the whole train split in "
        f"{t['seconds']} s; test top-1 **{100 * t['test_top1']:.2f}%**.",
        f"Every student arm: {r['epochs']} epochs over {r['train_limit']} samples "
        "(AdamW, lr 1e-3, batch 64, 0.25-epoch warm-up then cosine). TinyBERT's epochs are "
        f"split {r['plan']} (general on {r.get('corpus_limit', r['train_limit'])} unlabeled "
        "samples, then intermediate and prediction on the task samples); "
        + steps_text(r.get("corpus_limit", r["train_limit"]), r["train_limit"]),
        "",
        "| student | seeds | test top-1 mean | std | per seed | s per run |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for k, v in s.items():
        per = ", ".join(f"{100 * x:.2f}" for x in v["values"])
        lines.append(
            f"| {NAMES.get(k, k)} | {len(v['values'])} | {100 * v['mean']:.2f}% | "
            f"{100 * v['std']:.2f} | {per} | {v['seconds_mean']:.0f} |"
        )
    if "ce" in s and "distilbert" in s:
        d = 100 * (s["distilbert"]["mean"] - s["ce"]["mean"])
        lines += [
            "",
            f"- (ii) - (i): **{d:+.2f} points** (check: >= +2: {'met' if d >= 2 else 'MISSED'}).",
        ]
    if "tinybert" in s and "distilbert" in s:
        d = 100 * (s["tinybert"]["mean"] - s["distilbert"]["mean"])
        lines.append(
            f"- (iii) - (ii): **{d:+.2f} points** (check: >= 0: {'met' if d >= 0 else 'MISSED'})."
        )
    if "distilbert+tinybert" in s and "distilbert" in s:
        d = 100 * (s["distilbert+tinybert"]["mean"] - s["distilbert"]["mean"])
        lines.append(f"- (iv) - (ii): {d:+.2f} points.")
    if r.get("prune"):
        p = r["prune"]
        lines += [
            "",
            f"## Head and FFN pruning of the teacher ({int(100 * p['ratio'])}% of heads and "
            "FFN channels, L1, structured)",
            "",
            f"Test top-1: teacher {100 * t['test_top1']:.2f}%, pruned before fine-tuning "
            f"{100 * p['top1_before']:.2f}%, after {p['epochs']} epoch(s) of fine-tuning "
            f"(CE, lr 5e-4, {r['train_limit']} samples) **{100 * p['top1_after']:.2f}%**.",
        ]
    if r.get("stages"):
        lines += [
            "",
            f"ONNX Runtime FP32, measured interleaved ({r['runs_latency']} runs; latency in ms, "
            f"sequence {r.get('seq_len', 64)}):",
            "",
            "| model | top-1 | params | MACs | batch 1 ms | batch 8 ms |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for st in r["stages"]:
            lines.append(
                f"| {st['name']} | {100 * st['accuracy']:.2f}% | {st['params']:,} | "
                f"{st['macs']:,} | {st['latency_ms']['1']:.3f} | {st['latency_ms']['8']:.3f} |"
            )
    if r.get("notes"):
        lines += ["", *r["notes"]]
    return "\n".join(lines) + "\n"


def steps_text(corpus: int, train: int) -> str:
    """Whether TinyBERT's general stage took as many optimizer steps as the other arms'."""
    if corpus == train:
        return "with a corpus as large as the task data every arm takes the same number of steps."
    return (
        f"its general epoch passes over {corpus} sentences, {corpus / train:.0f}x the task "
        "data, so TinyBERT arms take more optimizer steps than the others (TinyBERT's general "
        "distillation is defined on a large unlabeled corpus; no labels are read in it)."
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="textlogic")
    p.add_argument("--teacher-epochs", type=int, default=5)
    p.add_argument("--teacher-lr", type=float, default=1e-3, help="synthtext teacher only")
    p.add_argument("--epochs", type=int, default=3, help="per arm (TinyBERT: all phases)")
    p.add_argument("--train-limit", type=int, default=4000, help="task samples per student")
    p.add_argument("--corpus-limit", type=int, default=None, help="general-stage corpus size")
    p.add_argument("--no-prune", action="store_true", help="skip pruning and latency")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--prune-ratio", type=float, default=0.5)
    p.add_argument("--prune-epochs", type=int, default=1)
    p.add_argument("--runs", type=int, default=30, help="latency runs per model and batch")
    p.add_argument("--stem", default="distillation.text")
    p.add_argument("--report", action="store_true", help="rewrite the markdown from the json")
    args = p.parse_args()
    if args.report:
        r = json.loads((RESULTS / f"{args.stem}.json").read_text())
        save(r, args.stem)
        return
    torch.set_num_threads(1)
    from edgeslim.data.textlogic import unlabeled_ids

    small = not args.data.startswith("textlogic")
    t0 = time.time()
    teacher = get_teacher(args.data, args.teacher_epochs, args.teacher_lr, small)
    teacher.model.eval()
    teacher_s = round(time.time() - t0)
    n = args.train_limit
    train = load_dataset(args.data, "train")
    task_data = Subset(train, range(n))
    c = args.corpus_limit or n
    if small:  # synthtext has no corpus: the train samples after the task's, labels never read
        corpus = Subset(train, range(n, min(len(train), n + c)))
    else:
        length = dataset_info(args.data).input_shape[0]
        corpus = TokenDataset(unlabeled_ids(c, length), np.zeros(c, dtype=np.int64))
    result = {
        "command": "PYTHONPATH=. nice -n 10 python benchmarks/distill_text.py "
        f"--data {args.data} --teacher-epochs {args.teacher_epochs}"
        + (f" --teacher-lr {args.teacher_lr}" if small else "")
        + f" --epochs {args.epochs} --train-limit {n} "
        f"--seeds {args.seeds} --arms {args.arms}"
        + (f" --corpus-limit {args.corpus_limit}" if args.corpus_limit else "")
        + (" --no-prune" if args.no_prune else ""),
        "corpus_limit": len(corpus),
        "seq_len": dataset_info(args.data).input_shape[0],
        "cpu": cpu_model(),
        "load_start": round(__import__("os").getloadavg()[0], 1),
        "data": args.data,
        "teacher": {
            "epochs": args.teacher_epochs,
            "lr": args.teacher_lr if small else TEACHER_LR,
            "seconds": teacher.meta.get("train_seconds", teacher_s),  # a cached one: its own
            "config": teacher.source["config"],
            "test_top1": top1_of(teacher.model, args.data),
        },
        "epochs": args.epochs,
        "train_limit": n,
        "plan": "/".join(str(e) for _, _, e in split_plan(args.epochs).phases()),
        "runs": [],
    }
    print(json.dumps(result["teacher"]), flush=True)
    last: dict[str, tuple[LoadedModel, float]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for arm in args.arms.split(","):
            t0 = time.time()
            student, acc = run_arm(arm, seed, teacher, args.data, task_data, corpus, args.epochs)
            result["runs"].append(
                {"arm": arm, "seed": seed, "test_top1": acc, "seconds": round(time.time() - t0)}
            )
            last[arm] = (student, acc)
            print(json.dumps(result["runs"][-1]), flush=True)
            save(result, args.stem)
    if not args.no_prune:
        prune_and_time(result, args, teacher, task_data, last)
    result["load_end"] = round(__import__("os").getloadavg()[0], 1)
    save(result, args.stem)


def prune_and_time(result: dict, args, teacher: LoadedModel, task_data, last: dict) -> None:
    """Heads + FFN pruning of the teacher, fine-tuned, and FP32 ORT latency of the teacher,
    the pruned teacher and a 2-layer student (every arm's student has one architecture)."""
    pruned, before, after = prune_teacher(
        teacher, args.data, task_data, args.prune_epochs, args.prune_ratio
    )
    result["prune"] = {
        "ratio": args.prune_ratio, "epochs": args.prune_epochs,
        "top1_before": before, "top1_after": after,
    }  # fmt: skip
    print(json.dumps(result["prune"]), flush=True)
    save(result, args.stem)
    models = [("teacher bert-6L", teacher, result["teacher"]["test_top1"])]
    models.append((f"teacher pruned {args.prune_ratio} (heads+FFN), fine-tuned", pruned, after))
    models += [(f"student 2L ({arm})", lm, acc) for arm, (lm, acc) in last.items()][-1:]
    result["stages"] = stage_records(models, batches=(1, 8), runs=args.runs)
    result["runs_latency"] = args.runs


if __name__ == "__main__":
    main()
