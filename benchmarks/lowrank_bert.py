"""Issue 15's transformer check: BERT's FFN by truncated SVD at half its parameters,
and ALBERT (factorized embedding + cross-layer sharing), measured.

Accuracy on ``synthtext`` (the text task a BERT learns here): a 4-layer BERT teacher
(hidden 128, 4 heads, FFN 512, 64 positions) trained once and cached; then every row
gets the same KD fine-tune from that dense teacher (Hinton KD, ``LossSpec()``
defaults; same epochs, lr and seeds for all rows):

* ``dense (control)``: the teacher itself fine-tuned the same way, so fine-tune gain
  and method loss can be told apart;
* ``FFN SVD 0.5``: every FFN Linear (``intermediate.dense`` and the layer's
  ``output.dense``, not ``attention.output.dense``) swapped for its truncated SVD at
  half its parameters (``RankRule(ratio=0.5)``);
* ``ALBERT E=.. g=N``: the word embedding factorized at rank E, then the encoder
  layers shared in N groups (1: all layers share one block).

Speed on ONNX Runtime FP32, every variant of one model timed interleaved in one loop
(:func:`edgeslim.bench.latency.measure`) at batch 1 and 8: the trained small model at
its length (32), and a BERT-base-sized model (hidden 768, 12 heads, 12 layers, FFN
3072, length 128) with random weights (speed only), dense vs FFN SVD 0.5 (and ALBERT).
The dense file is timed in a second session too (the noise-control row).

    nice -n 10 python benchmarks/lowrank_bert.py                # everything
    nice -n 10 python benchmarks/lowrank_bert.py --parts speed --threads 1,2
    nice -n 10 python benchmarks/lowrank_bert.py --parts accuracy --train-limit 500 \
        --out benchmarks/results/lowrank_bert_limited.json       # KD on 500 samples
    nice -n 10 python benchmarks/lowrank_bert.py --parts render  # rewrite the .md

Writes ``benchmarks/results/lowrank_bert.{json,md}`` after each part (a rerun keeps
the parts it does not redo).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Subset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeslim.bench.accuracy import evaluate_model  # noqa: E402
from edgeslim.bench.latency import measure, onnx_target  # noqa: E402
from edgeslim.bench.machine import machine_info, machine_line  # noqa: E402
from edgeslim.bench.macs import count_macs, count_params  # noqa: E402
from edgeslim.core.atomic import write_text_atomic  # noqa: E402
from edgeslim.core.modes import eval_mode  # noqa: E402
from edgeslim.core.paths import cache_dir  # noqa: E402
from edgeslim.core.select import matches  # noqa: E402
from edgeslim.data import load_dataset, make_loader  # noqa: E402
from edgeslim.export.onnx import export_onnx  # noqa: E402
from edgeslim.lowrank import EmbeddingFactorConfig, LayerSharingConfig, RankRule, SVDConfig  # noqa: E402
from edgeslim.models.inputs import InputSpec  # noqa: E402
from edgeslim.models.saved import is_saved_model, load_saved, save_model  # noqa: E402
from edgeslim.models.spec import LoadedModel, build_source  # noqa: E402
from edgeslim.train.config import TrainConfig  # noqa: E402
from edgeslim.train.trainer import Trainer  # noqa: E402
from edgeslim.workflows.decompose import decompose  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "lowrank_bert.json"
LIMITED = "lowrank_bert_limited"  # the data-limited run's file stem
DATA = "synthtext"
TASK = "sequence_classification"
SEQ = 32  # synthtext's length
# every FFN Linear of a BERT layer; ``attention.output.dense`` does not match
FFN = r".*layer\.\d+\.(intermediate|output)\.dense"
SMALL = {
    "model_type": "bert",
    "vocab_size": 128,  # synthtext's tokens
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 512,
    "max_position_embeddings": 64,
    "num_labels": 4,
}
BASE = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "num_labels": 2,
}


def train_config(epochs: int, seed: int, lr: float) -> TrainConfig:
    """AdamW, batch 64, 1-epoch warm-up then cosine, grad norm <= 1, bf16 autocast."""
    return TrainConfig(
        epochs=epochs, batch_size=64, lr=lr, optimizer="adamw", weight_decay=0.01,
        augment=False, seed=seed, warmup_epochs=1.0, grad_clip=1.0, amp=True,
    )  # fmt: skip


def new_bert(config: dict, seq: int, name: str, seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    source = {"kind": "hf", "config": dict(config)}
    spec = InputSpec((1, seq), "int64", config["vocab_size"])
    return LoadedModel(build_source(source).eval(), source, spec, name)


def test_top1(model: nn.Module, split: str = "test") -> float:
    loader = make_loader(load_dataset(DATA, split), 256, shuffle=False)
    return evaluate_model(model, loader, TASK)["top1"]


def test_nll(model: nn.Module, split: str = "test") -> float:
    """Mean cross-entropy on ``split``: finer than top-1 where top-1 sits at 100%."""
    total, n = 0.0, 0
    with eval_mode(model), torch.no_grad():
        for x, y in make_loader(load_dataset(DATA, split), 256, shuffle=False):
            out = model(x)
            logits = getattr(out, "logits", out)
            total += nn.functional.cross_entropy(logits.float(), y, reduction="sum").item()
            n += len(y)
    return total / n


def trained_teacher(config: dict, epochs: int, lr: float, seed: int = 0) -> LoadedModel:
    """The small BERT trained on synthtext: from the cache, else trained and cached."""
    key = json.dumps([DATA, config, train_config(epochs, seed, lr).fingerprint()], sort_keys=True)
    path = cache_dir("lowrank_bert") / f"teacher-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if is_saved_model(path):
        return load_saved(path)
    lm = new_bert(config, SEQ, "bert-4L", seed)
    t0 = time.time()
    trainer = Trainer(lm.model, train_config(epochs, seed, lr), progress=False, task=TASK)
    history = trainer.fit(load_dataset(DATA, "train"), load_dataset(DATA, "val"))
    lm.meta = {
        "epochs": epochs,
        "lr": lr,
        "seed": seed,
        "train_seconds": round(time.time() - t0, 1),
        "history": history,
    }
    save_model(lm, path)
    return load_saved(path)


# ------------------------------------------------------------------------- variants


def is_ffn(name: str) -> bool:
    return matches(name, FFN)


def ffn_params(model: nn.Module) -> int:
    """Parameters of the FFN layers (dense Linear or their factorized Sequential)."""
    return sum(count_params(m) for n, m in model.named_modules() if is_ffn(n))


def ffn_svd(lm: LoadedModel, ratio: float = 0.5) -> tuple[LoadedModel, dict]:
    new, info = decompose(lm, SVDConfig(RankRule(ratio=ratio)), filter_fn=lambda m, n: is_ffn(n))
    ranks = sorted({v["rank"] for v in info["layers"].values()})
    return new, {"layers_factorized": len(info["layers"]), "ranks": ranks}


def albert(lm: LoadedModel, rank: int, groups: int) -> tuple[LoadedModel, dict]:
    new, info = decompose(
        lm, EmbeddingFactorConfig(RankRule(rank=rank)), share=LayerSharingConfig(groups=groups)
    )
    return new, {"embedding_rank": rank, "groups": info["sharing"]["groups"]}


def variants(lm: LoadedModel, emb_rank: int, albert_groups=(1, 2)) -> dict:
    """label -> (LoadedModel, extra): the dense model, FFN SVD 0.5 and the ALBERT rows."""
    out = {"dense": (lm, {})}
    out["FFN SVD 0.5"] = ffn_svd(lm)
    for g in albert_groups:
        out[f"ALBERT E={emb_rank} g={g}"] = albert(lm, emb_rank, g)
    return out


def describe(model: nn.Module, spec: InputSpec) -> dict:
    return {
        "params": count_params(model),
        "ffn_params": ffn_params(model),
        "macs": count_macs(model, spec.example(batch=1))[0],
    }


# ------------------------------------------------------------------------- accuracy


def train_subset(limit: int):
    """The first ``limit`` samples of a fixed shuffle of the train split (0: all of it)."""
    train = load_dataset(DATA, "train")
    if not limit:
        return None
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(12345))
    return Subset(train, order[:limit].tolist())


def finetune(student, teacher, epochs: int, lr: float, seed: int, train_data=None):
    """Hinton KD from ``teacher`` on synthtext's train split; the student's test top-1, NLL."""
    from edgeslim.distill.losses import LossSpec
    from edgeslim.workflows.distill import distill_model

    cfg = train_config(epochs, seed, lr)
    distill_model(
        student, [teacher], DATA, "kd", LossSpec(), cfg, train_data=train_data, progress=False
    )
    return test_top1(student.model), test_nll(student.model)


def accuracy(args, res: dict) -> None:
    teacher = trained_teacher(SMALL, args.teacher_epochs, args.teacher_lr)
    teacher.model.eval()
    acc = res.setdefault("accuracy", {})
    setting = {
        "teacher_epochs": args.teacher_epochs,
        "teacher_lr": args.teacher_lr,
        "epochs": args.epochs,
        "lr": args.lr,
        "emb_rank": args.emb_rank,
        "train_limit": args.train_limit,
        "config": SMALL,
        "metrics": ["top1", "nll"],
    }
    if acc.get("setting") != setting:  # recorded under other settings: start over
        acc.clear()
        acc["setting"] = setting
    t_top1 = test_top1(teacher.model)
    acc["teacher"] = {
        "test_top1": t_top1,
        "test_nll": test_nll(teacher.model),
        "train_seconds": teacher.meta.get("train_seconds"),
        **describe(teacher.model, teacher.input),
    }
    rows = acc.setdefault("rows", {})
    seeds = [int(s) for s in args.seeds.split(",")]
    subset = train_subset(args.train_limit)
    for label, (lm, extra) in variants(teacher, args.emb_rank).items():
        label = "dense (control)" if label == "dense" else label
        row = rows.setdefault(label, {"seeds": {}})
        row.update(describe(lm.model, lm.input), **extra)
        row["top1_before_ft"] = test_top1(lm.model)
        row["nll_before_ft"] = test_nll(lm.model)
        for seed in seeds:
            if str(seed) in row["seeds"]:
                continue
            student = LoadedModel(copy.deepcopy(lm.model), lm.source, lm.input, label)
            t0 = time.time()
            top1, nll = finetune(student, teacher, args.epochs, args.lr, seed, subset)
            row["seeds"][str(seed)] = {
                "top1": top1,
                "nll": nll,
                "seconds": round(time.time() - t0, 1),
            }
            summarize(row, t_top1)
            res["uptime_accuracy"] = uptime()
            save(res)
            print(label, seed, f"{top1:.4f}", f"{time.time() - t0:.0f}s", flush=True)
        summarize(row, t_top1)
    save(res)


def summarize(row: dict, teacher_top1: float) -> None:
    v = [s["top1"] for s in row["seeds"].values()]
    if not v:
        return
    row["top1_mean"] = statistics.mean(v)
    row["top1_std"] = statistics.stdev(v) if len(v) > 1 else 0.0
    row["drop_points"] = 100 * (teacher_top1 - row["top1_mean"])
    row["nll_mean"] = statistics.mean(s["nll"] for s in row["seeds"].values())


# ---------------------------------------------------------------------------- speed


NOISE = "dense, 2nd session (noise control)"


def time_models(models: dict, spec: InputSpec, batches, runs: int, threads: int, dynamo=True):
    """Export each model, then time every file interleaved; one record per model.

    The first model's file is also timed in a second session (the last row): its
    "speedup" over the first shows how far two identical models differ here.
    """
    recs, targets = [], []
    with tempfile.TemporaryDirectory() as d:
        for i, (label, model) in enumerate(models.items()):
            exp = export_onnx(model, spec, Path(d) / f"m{i}.onnx", dynamo=dynamo)
            targets.append(onnx_target(exp.path, label, spec))
            recs.append(
                {
                    "model": label,
                    **describe(model, spec),
                    "onnx_bytes": exp.size_bytes,
                    "parity": exp.max_abs_diff,
                }
            )
        targets.append(onnx_target(Path(d) / "m0.onnx", NOISE, spec))
        recs.append({**recs[0], "model": NOISE})
        rep = measure(targets, tuple(batches), runs=runs, threads=threads, progress=False)
    for r in recs:
        r["ms"] = {str(b): rep.median(r["model"], b) for b in batches}
        r["speedup"] = {str(b): rep.median(recs[0]["model"], b) / r["ms"][str(b)] for b in batches}
    return recs


def speed(args, res: dict) -> None:
    sp = res.setdefault("speed", {})
    for name in args.speed_models.split(","):
        if name == "small":
            lm = trained_teacher(SMALL, args.teacher_epochs, args.teacher_lr)
            desc = (
                "the trained synthtext model (4 layers, hidden 128, FFN 512), length 32; "
                "the variants before fine-tuning (same shapes as after)"
            )
            runs, groups, rank = args.runs, (1, 2), args.emb_rank
        elif name == "base":
            lm = new_bert(BASE, 128, "bert-base")
            desc = (
                "BERT-base-sized (12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522), "
                "length 128, random weights: speed only"
            )
            runs, groups, rank = args.base_runs, (1,), 128
        else:
            raise SystemExit(f"unknown speed model {name!r}: small or base")
        lm.model.eval()
        models = {k: v[0].model.eval() for k, v in variants(lm, rank, groups).items()}
        for threads in [int(t) for t in args.threads.split(",")]:
            t0 = time.time()
            load = uptime()
            recs = time_models(models, lm.input, args.batches, runs, threads)
            sp[f"{name} t{threads}" + (f" {args.tag}" if args.tag else "")] = {
                "model": name,
                "desc": desc,
                "seq": lm.input.shape[1],
                "threads": threads,
                "runs": runs,
                "command": command(),
                "uptime_before": load,
                "uptime_after": uptime(),
                "seconds": round(time.time() - t0),
                "rows": recs,
            }
            save(res)
            print(name, threads, json.dumps([(r["model"], r["ms"]) for r in recs]), flush=True)


# --------------------------------------------------------------------------- report


def command() -> str:
    return "nice -n 10 python benchmarks/lowrank_bert.py " + shlex.join(sys.argv[1:])


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def load_results() -> dict:
    try:
        return json.loads(OUT.read_text())
    except (OSError, ValueError):
        return {}


def save(res: dict, path: Path | None = None) -> None:
    path = path or OUT
    write_text_atomic(path, json.dumps(res, indent=2, default=str) + "\n")
    write_text_atomic(path.with_suffix(".md"), markdown(res))


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _nll(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def accuracy_table(acc: dict) -> list[str]:
    t, s = acc["teacher"], acc["setting"]
    lines = [
        f"Teacher: 4-layer BERT (hidden 128, 4 heads, FFN 512), trained {s['teacher_epochs']} "
        f"epochs (lr {s['teacher_lr']}) on synthtext's 4,000 training samples; test top-1 "
        f"**{_pct(t['test_top1'])}**, test NLL {_nll(t.get('test_nll'))} (500 test samples: "
        "one sample is 0.2 points).",
        "Every row: KD from the dense teacher (T=4, alpha 0.9: `LossSpec()`) on "
        + (
            f"{s['train_limit']:,} training samples (a fixed subset)"
            if s.get("train_limit")
            else "all 4,000 training samples"
        )
        + f", {s['epochs']} epochs, lr {s['lr']}, AdamW, batch 64, bf16 autocast; seeds set "
        "data order and dropout.",
        "",
        "| model | params | FFN params (unique) | MACs (batch 1) | top-1 before FT | "
        "top-1 after KD (mean ± std) | seeds | per seed | drop vs teacher (points) | "
        "test NLL before FT -> after KD |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for label, r in acc["rows"].items():
        per = ", ".join(f"{100 * v['top1']:.2f}" for v in r["seeds"].values())
        mean = f"{_pct(r['top1_mean'])} ± {100 * r['top1_std']:.2f}" if "top1_mean" in r else "-"
        drop = f"{r['drop_points']:+.2f}" if "drop_points" in r else "-"
        lines.append(
            f"| {label} | {r['params']:,} ({r['params'] / t['params']:.2f}x) | "
            f"{r['ffn_params']:,} ({r['ffn_params'] / t['ffn_params']:.3f}x) | {r['macs']:,} | "
            f"{_pct(r['top1_before_ft'])} | {mean} | {len(r['seeds'])} | {per} | {drop} | "
            f"{_nll(r.get('nll_before_ft'))} -> {_nll(r.get('nll_mean'))} |"
        )
    return lines


def speed_table(cell: dict, batches) -> list[str]:
    head = " | ".join(f"batch {b} ms (speedup)" for b in batches)
    lines = [
        f"| model | params | FFN params (unique) | MACs (batch 1) | ONNX MB | {head} |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(batches),
    ]
    base = cell["rows"][0]
    for r in cell["rows"]:
        cells = " | ".join(f"{r['ms'][str(b)]:.3f} ({r['speedup'][str(b)]:.2f}x)" for b in batches)
        lines.append(
            f"| {r['model']} | {r['params']:,} ({r['params'] / base['params']:.2f}x) | "
            f"{r['ffn_params']:,} | {r['macs']:,} ({r['macs'] / base['macs']:.2f}x) | "
            f"{r['onnx_bytes'] / 1e6:.2f} | {cells} |"
        )
    return lines


def markdown(res: dict) -> str:
    m = res.get("machine", {})
    lines = [
        "# BERT low-rank (issue 15): FFN SVD at half the FFN parameters, ALBERT sharing",
        "",
        *(
            f"Command ({part}): `{cmd}`  "
            for part, cmd in res.get("commands", {}).items()
            if part != "speed" or "speed" not in res
        ),
        *(["Speed: each table names the command that measured it."] if "speed" in res else []),
        "",
        f"CPU: {m.get('cpu', '?')}. {machine_line(m) if m else ''}",
        "",
    ]
    if "accuracy" in res and "teacher" in res["accuracy"]:
        lines += ["## Accuracy on `synthtext`", "", f"Load: {res.get('uptime_accuracy', '?')}."]
        lines += ["", *accuracy_table(res["accuracy"]), ""]
    for key, cell in res.get("speed", {}).items():
        batches = [int(b) for b in cell["rows"][0]["ms"]]
        lines += [
            f"## ONNX Runtime FP32 speed: {key.split()[0]} model, {cell['threads']} thread(s)"
            + (f" ({' '.join(key.split()[2:])})" if len(key.split()) > 2 else ""),
            "",
            f"Command: `{cell.get('command', '?')}`. {cell['desc']}. Median of {cell['runs']} "
            "interleaved runs; speedup against the "
            f"dense model of the same table. Load before: `{cell['uptime_before']}`; after: "
            f"`{cell['uptime_after']}`.",
            "",
            *speed_table(cell, batches),
            "",
        ]
    lines += reading(res)
    limited = OUT.with_name(LIMITED + ".md")
    if OUT.stem != LIMITED and limited.is_file():
        lines += [
            "",
            f"The same accuracy check with KD on 500 training samples only is in "
            f"`{limited.name}` (`--parts accuracy --train-limit 500 --out "
            f"benchmarks/results/{LIMITED}.json`).",
        ]
    return "\n".join(lines) + "\n"


def reading(res: dict) -> list[str]:
    """The plain reading, computed from the numbers (no figure is typed in by hand)."""
    out = ["## Reading", ""]
    acc = res.get("accuracy", {})
    rows = acc.get("rows", {})
    svd, ctl = rows.get("FFN SVD 0.5", {}), rows.get("dense (control)", {})
    if "top1_mean" in svd and "top1_mean" in ctl:
        t = acc["teacher"]
        out.append(
            f"- FFN SVD at half the FFN parameters: FFN {t['ffn_params']:,} -> "
            f"{svd['ffn_params']:,} ({svd['ffn_params'] / t['ffn_params']:.3f}x), whole model "
            f"{t['params']:,} -> {svd['params']:,} ({svd['params'] / t['params']:.2f}x). "
            f"Top-1 {_pct(svd['top1_before_ft'])} before fine-tuning, "
            f"{_pct(svd['top1_mean'])} after KD ({len(svd['seeds'])} seeds), against "
            f"{_pct(ctl['top1_mean'])} for the dense model given the same fine-tune and "
            f"{_pct(t['test_top1'])} for the teacher: "
            f"drop vs the control {100 * (ctl['top1_mean'] - svd['top1_mean']):+.2f} points."
        )
        floor = min(r["top1_mean"] for r in rows.values() if "top1_mean" in r)
        if t["test_top1"] >= 0.995 and t["test_top1"] - floor <= 0.004:
            out.append(
                f"- synthtext is at its ceiling here: the teacher scores "
                f"{_pct(t['test_top1'])} and every row ends within 0.4 points (2 test samples) "
                "of it, so top-1 cannot separate the methods; the test NLL column is the "
                "finer measure of what each method lost."
            )
    for label, r in rows.items():
        if label.startswith("ALBERT") and "top1_mean" in r:
            out.append(
                f"- {label}: {r['params']:,} parameters "
                f"({r['params'] / acc['teacher']['params']:.2f}x), top-1 "
                f"{_pct(r['top1_before_ft'])} before fine-tuning, {_pct(r['top1_mean'])} "
                f"after KD (drop vs the teacher {r['drop_points']:+.2f} points"
                + (
                    f", vs the control {100 * (ctl['top1_mean'] - r['top1_mean']):+.2f})."
                    if "top1_mean" in ctl
                    else ")."
                )
            )
    for key, cell in res.get("speed", {}).items():
        by = {r["model"]: r for r in cell["rows"]}
        if "FFN SVD 0.5" not in by:
            continue
        s = by["FFN SVD 0.5"]
        met = [b for b, v in s["speedup"].items() if v >= 1.3]
        verdict = (
            "met at every batch"
            if len(met) == len(s["speedup"])
            else f"met at batch {', '.join(met)} only"
            if met
            else "MISSED"
        )
        ups = ", ".join(f"{v:.2f}x at batch {b}" for b, v in s["speedup"].items())
        frac = s["macs"] / by["dense"]["macs"]
        above = [b for b, v in s["speedup"].items() if v > 1.03 / frac]
        flag = (
            f" At batch {', '.join(above)} the ratio is above the MAC bound: timing noise "
            "(a slowed dense run), not the method."
            if above
            else ""
        )
        out.append(
            f"- {key}: FFN SVD 0.5 is {ups} on ORT FP32, for {frac:.2f}x the MACs (the MAC "
            f"bound is {1 / frac:.2f}x; 1.3x whole-model speedup: {verdict}).{flag}"
        )
        for label, r in by.items():
            ups = ", ".join(f"{v:.2f}x" for v in r["speedup"].values())
            if label == NOISE:
                out.append(f"  {label}: {ups} (identical model: the spread of this table).")
            elif label.startswith("ALBERT"):
                size = r["onnx_bytes"] / by["dense"]["onnx_bytes"]
                out.append(f"  {label}: {ups}, ONNX {size:.2f}x the dense file.")
    speed = res.get("speed", {})
    for key, cell in speed.items():
        parts = key.split()
        one = speed.get(" ".join([parts[0], "t1", *parts[2:]]))
        if cell["threads"] > 1 and one is not None:
            d1, dn = one["rows"][0]["ms"], cell["rows"][0]["ms"]
            slower = [b for b in dn if dn[b] > d1[b]]
            if slower:
                out.append(
                    f"- {key}: the dense model ran slower on {cell['threads']} threads than on 1 "
                    f"(batch {', '.join(slower)}): the other core was busy (see the load), so "
                    "this table's ratios are the noisier ones."
                )
    out += [
        "",
        "Why FFN SVD cannot give 2x on the whole model: only the FFN shrinks. Attention's "
        "Q/K/V/output projections, the attention matmuls, the embeddings, LayerNorms, "
        "softmax and GELU keep their cost, so halving the FFN (about 2/3 of a layer's "
        "Linear MACs) leaves ~0.67x the MACs at best, a ~1.5x ceiling before the two thin "
        "GEMMs' lower efficiency. On the small model (hidden 128, length 32) the FFN GEMMs are "
        "small, and the ops that do not shrink (LayerNorm, softmax, GELU, reshapes, plus one "
        "more MatMul per factorized layer) weigh more, so its speedup falls further below the "
        "MAC bound than BERT-base's. ALBERT's sharing and factorized embedding buy size only "
        "(parameters and file size): every layer still runs (and the embedding adds one E x H "
        "matmul), so no speedup is expected from compute. Where an ALBERT row still comes out "
        "a few percent faster than the dense model at the same MACs, read it against the "
        "noise-control row (the dense file timed again in a second session); the shared "
        "block's weights may also stay in cache from one layer to the next (not checked "
        "here), a memory effect rather than less work.",
    ]
    return out


def main() -> None:
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="accuracy,speed", help="accuracy, speed, render")
    ap.add_argument("--teacher-epochs", type=int, default=6)
    ap.add_argument("--teacher-lr", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=3, help="KD fine-tune epochs, every row")
    ap.add_argument("--lr", type=float, default=5e-4, help="KD fine-tune lr, every row")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument(
        "--train-limit", type=int, default=0, help="KD on this many train samples (0: all 4,000)"
    )
    ap.add_argument("--out", default=None, help=f"results JSON (default {OUT.name})")
    ap.add_argument("--emb-rank", type=int, default=32, help="ALBERT E of the small model")
    ap.add_argument("--speed-models", default="small,base")
    ap.add_argument("--threads", default="1", help="ORT threads, e.g. 1,2")
    ap.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[1, 8])
    ap.add_argument("--runs", type=int, default=50, help="timed runs, small model")
    ap.add_argument("--tag", default="", help="speed: record under '<model> t<threads> TAG'")
    ap.add_argument("--base-runs", type=int, default=15, help="timed runs, BERT-base")
    args = ap.parse_args()
    OUT = Path(args.out) if args.out else OUT
    torch.set_num_threads(1)
    res = load_results()
    cmd = command()
    parts = args.parts.split(",")
    ran = [p for p in parts if p in ("accuracy", "speed")]  # "render": rewrite the .md only
    res.setdefault("commands", {}).update(dict.fromkeys(ran, cmd.strip()))
    if ran:
        res["machine"] = machine_info()
    if "accuracy" in parts:
        accuracy(args, res)
    if "speed" in parts:
        speed(args, res)
    save(res)
    print(f"wrote {OUT.with_suffix('.md')}")


if __name__ == "__main__":
    main()
