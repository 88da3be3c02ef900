"""BERT distillation on the generated ``synthtext`` task: a 4-layer config-built BERT
teacher, a 2-layer student initialised DistilBERT-style (every other teacher layer),
trained with and without KD (same epochs, 3 seeds), plus KD + TinyBERT layer losses,
then the teacher and the student measured on ONNX Runtime (the ``stages`` schema).

Usage (the numbers in benchmarks/results/distillation.md come from exactly this)::

    nice -n 10 python benchmarks/distill_synthtext.py --teacher-epochs 6 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from edgeslim.bench.accuracy import evaluate_model
from edgeslim.data import load_dataset, make_loader
from edgeslim.distill.bert_init import distilbert_student
from edgeslim.distill.layers import transformer_pairs
from edgeslim.distill.losses import LossSpec
from edgeslim.models.inputs import InputSpec
from edgeslim.models.spec import LoadedModel, build_source
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer
from edgeslim.workflows.distill import distill_model
from edgeslim.workflows.distill_report import stage_records

DATA = "synthtext"
OUT = Path(__file__).parent / "results" / "distillation.synthtext.json"
CONFIG = {
    "model_type": "bert",
    "vocab_size": 128,
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "max_position_embeddings": 64,
    "num_labels": 4,
    "attn_implementation": "eager",  # TinyBERT's attention loss reads the attention maps
}
SEQ = InputSpec((1, 32), "int64", 128)


def cfg(epochs: int, seed: int = 0) -> TrainConfig:
    return TrainConfig(
        epochs=epochs, batch_size=64, lr=1e-3, optimizer="adamw", weight_decay=0.01,
        augment=False, seed=seed, warmup_epochs=0.5,
    )  # fmt: skip


def test_top1(model: torch.nn.Module) -> float:
    return evaluate_model(model, make_loader(load_dataset(DATA, "test"), 256, False))["top1"]


def write_markdown(result: dict, path: Path) -> None:
    """The BERT section of ``distillation.md`` (the signs script appends it to its own)."""
    t, s = result["teacher"], result["summary"]
    names = {
        "ce": "DistilBERT init, cross-entropy only (no KD)",
        "kd": "DistilBERT init + Hinton KD (T=2, alpha=0.5)",
        "kd+tinybert": "DistilBERT init + KD + TinyBERT hidden/attention losses",
    }
    lines = [
        "## BERT on `synthtext`: 4-layer teacher -> 2-layer DistilBERT-init student",
        "",
        f"Command: `{result['command']}`. Teacher test top-1: {100 * t['test_top1']:.2f}%.",
        "Every student starts from teacher layers 0 and 2 (DistilBERT's init) and trains for",
        "the same epochs (AdamW, lr 1e-3, batch 64); seeds set data order and dropout.",
        "",
        "| student trained with | seeds | test top-1 mean | std | per seed |",
        "|---|---:|---:|---:|---|",
    ]
    for k, v in s.items():
        per = ", ".join(f"{100 * x:.2f}" for x in v["values"])
        lines.append(
            f"| {names.get(k, k)} | {len(v['values'])} | {100 * v['mean']:.2f}% | "
            f"{100 * v['std']:.2f} | {per} |"
        )
    lines += [
        "",
        "ONNX Runtime, measured interleaved (stages schema; latency in ms):",
        "",
        "| stage | top-1 | params | MACs | size (bytes) | batch 1 ms | batch 8 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for st in result["stages"]:
        lines.append(
            f"| {st['name']} | {100 * st['accuracy']:.2f}% | {st['params']:,} | {st['macs']:,} | "
            f"{st['size_bytes']:,} | {st['latency_ms']['1']:.3f} | {st['latency_ms']['8']:.3f} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher-epochs", type=int, default=6)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--runs", type=int, default=20, help="latency runs per model and batch")
    args = p.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    torch.manual_seed(0)
    source = {"kind": "hf", "config": dict(CONFIG)}
    teacher = LoadedModel(build_source(source), source, SEQ, "bert-4L")
    Trainer(teacher.model, cfg(args.teacher_epochs)).fit(
        load_dataset(DATA, "train"), load_dataset(DATA, "val")
    )
    teacher.meta["test_top1"] = test_top1(teacher.model)
    teacher_s = time.time() - t0
    print(f"teacher test top-1 {teacher.meta['test_top1']:.4f} ({teacher_s:.0f}s)", flush=True)
    runs = []
    seeds = [int(s) for s in args.seeds.split(",")]
    plan = [("ce", s) for s in seeds] + [("kd", s) for s in seeds] + [("kd+tinybert", seeds[0])]
    student = None
    for kind, seed in plan:
        torch.manual_seed(seed)
        student = distilbert_student(teacher)
        t1 = time.time()
        if kind == "ce":
            Trainer(student.model, cfg(args.epochs, seed)).fit(load_dataset(DATA, "train"))
            top1 = test_top1(student.model)
        else:
            pairs = transformer_pairs(student.model, teacher.model, attention=True)
            spec = LossSpec(temperature=2.0, alpha=0.5, layers=pairs if "tiny" in kind else ())
            res = distill_model(student, [teacher], DATA, kind, spec, cfg(args.epochs, seed))
            top1 = res.test_top1
        runs.append({"kind": kind, "seed": seed, "test_top1": top1, "seconds": time.time() - t1})
        print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for kind in dict.fromkeys(r["kind"] for r in runs):
        v = [r["test_top1"] for r in runs if r["kind"] == kind]
        summary[kind] = {
            "mean": statistics.mean(v),
            "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "values": v,
        }
    stages = stage_records(
        [("teacher bert-4L", teacher, teacher.meta["test_top1"]),
         ("student bert-2L (distilbert init, kd)", student, runs[-1]["test_top1"])],
        runs=args.runs,
    )  # fmt: skip
    result = {
        "command": "nice -n 10 python benchmarks/distill_synthtext.py "
        f"--teacher-epochs {args.teacher_epochs} --epochs {args.epochs} --seeds {args.seeds}",
        "config": CONFIG,
        "teacher": {"test_top1": teacher.meta["test_top1"], "seconds": teacher_s},
        "runs": runs,
        "summary": summary,
        "stages": stages,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, OUT.with_suffix(".md"))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
