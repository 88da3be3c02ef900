"""Shared-pattern ResNet-18 at 224 against the best dense FP32 deployment, timed interleaved.

Models (BN folded in every PyTorch model; ONNX Runtime fuses BN itself):

* dense, ONNX Runtime FP32 (full graph optimisation);
* dense, PyTorch eager, channels_last;
* shared patterns, 3 taps (3EP-like, 66.7 % of every 3×3 conv zero) and 2 taps
  (2EP-like, 77.8 %), 4 filter groups per conv (``SharedPatternConfig``), deployed
  with ``PatternExecConfig``: each 3×3 conv runs as :class:`PatternConv2d`
  (shifted GEMMs on views of a padded NHWC buffer) only where that timed faster
  than its dense channels_last conv at this batch and thread count; PyTorch eager,
  channels_last end to end (no layout conversion). The per-layer choice and both
  times go into the results.

Runtime choice: PyTorch eager. Each tap of each group is one sgemm on a strided view
of the padded input (no copy), which eager issues directly; ONNX Runtime's Slice
copies every shifted input (measured 0.68-1.9x of its dense conv, FACTS.md) and a
traced/exported program runs the same kernels.

Each batch size times all models in one loop, round-robin (``--runs`` rounds,
median). Weights are random (speed does not depend on them); the pattern models are
checked against their masked dense twins (max |diff|).

    python benchmarks/pattern_speed.py --threads 2 --runs 30
    python benchmarks/pattern_speed.py --render   # rebuild the .md from the .json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgeslim.bench.staircase import cpu_model
from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.methods import apply_
from edgeslim.export.onnx import export_onnx
from edgeslim.export.ort import ort_session
from edgeslim.fuse.conv_bn import fold_bn
from edgeslim.models import build_zoo_model
from edgeslim.models.inputs import InputSpec
from edgeslim.sparsity import PatternExecConfig, SharedPatternConfig, squashed

RESULTS = Path(__file__).parent / "results"
OUT = RESULTS / "pattern_speed.json"  # --stem names another
GROUPS = 4


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def random_bn_(model: torch.nn.Module) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def deploy(dense: torch.nn.Module, x1: torch.Tensor, k: int, xb: torch.Tensor, runs: int):
    """Shared k-tap patterns, BN folded, channels_last, PatternConv2d where faster at xb."""
    sparse, _ = apply_(copy.deepcopy(dense), SharedPatternConfig(k, GROUPS), calib=[x1])
    twin = fold_bn(squashed(sparse), x1).to(memory_format=torch.channels_last).eval()
    dep, rec = apply_(copy.deepcopy(twin), PatternExecConfig(runs=runs), calib=[xb])
    with torch.no_grad():
        diff = float((dep(xb) - twin(xb)).abs().max())
    return dep, rec.details["layers"], diff


def interleaved(fns: dict, runs: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median and fastest ms of each of ``fns``, timed round-robin (3 warm-up rounds)."""
    times: dict[str, list[float]] = {n: [] for n in fns}
    with torch.no_grad():
        for i in range(runs + 3):
            for n, f in fns.items():
                t0 = time.perf_counter()
                f()
                if i >= 3:
                    times[n].append((time.perf_counter() - t0) * 1e3)
    med = {n: round(statistics.median(v), 3) for n, v in times.items()}
    return med, {n: round(min(v), 3) for n, v in times.items()}


def run_batch(dense, folded, onnx_path, b: int, threads: int, runs: int) -> dict:
    x1 = torch.randn(1, 3, 224, 224)
    xb = torch.randn(b, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    sess = ort_session(onnx_path, threads)
    name = sess.get_inputs()[0].name
    xn = np.ascontiguousarray(xb.numpy())
    fns = {
        "dense ORT FP32": lambda: sess.run(None, {name: xn}),
        "dense eager channels_last": lambda: folded(xb),
    }
    layers, diffs = {}, {}
    for k in (3, 2):
        dep, layers[k], diffs[k] = deploy(dense, x1, k, xb, max(10, runs // 2))
        fns[f"shared {k}-tap"] = lambda dep=dep: dep(xb)
    ms, fastest = interleaved(fns, runs)
    best = min(ms["dense ORT FP32"], ms["dense eager channels_last"])
    best_min = min(fastest["dense ORT FP32"], fastest["dense eager channels_last"])
    return {
        "batch": b,
        "ms": ms,
        "fastest_ms": fastest,
        "best_dense_ms": best,
        "speedup_vs_best_dense": {
            f"shared {k}-tap": round(best / ms[f"shared {k}-tap"], 3) for k in (3, 2)
        },
        "speedup_vs_best_dense_fastest_runs": {
            f"shared {k}-tap": round(best_min / fastest[f"shared {k}-tap"], 3) for k in (3, 2)
        },
        "max_abs_diff_vs_masked_dense": diffs,
        "layers": {f"shared {k}-tap": layers[k] for k in (3, 2)},
        "load_after": load(),
    }


def render(res: dict) -> str:
    lines = ["# Shared-pattern 3×3 convs: ResNet-18 at 224, FP32, CPU", ""]
    if "speed" in res:
        s = res["speed"]
        lines += [
            f"CPU: {s['cpu']}; torch {s['torch']}; onnxruntime {s['ort']}; "
            f"{s['threads']} threads; {s['runs']} interleaved rounds (median).",
            f"Command: `{s['command']}`.",
            f"Machine load (other jobs shared this 2-core box): before `{s['load_before']}`; "
            "after each batch below. Timings on a loaded box are noisy; rerun quietly.",
            "",
            "| batch | model | median ms | vs best dense (median) | fastest ms "
            "| vs best dense (fastest) |",
            "|---|---|---|---|---|---|",
        ]
        for r in s["batches"]:
            for name, ms in r["ms"].items():
                sp = r["speedup_vs_best_dense"].get(name)
                sf = r.get("speedup_vs_best_dense_fastest_runs", {}).get(name)
                lines.append(
                    f"| {r['batch']} | {name} | {ms:.2f} | {f'{sp:.2f}x' if sp else ''} "
                    f"| {r.get('fastest_ms', {}).get(name, float('nan')):.2f} "
                    f"| {f'{sf:.2f}x' if sf else ''} |"
                )
        lines += [
            "",
            "Per layer (PatternExec's own interleaved timing at that batch, fastest of its "
            "runs; the form with the lower time is kept; block: the row block of the "
            "fastest pattern run, 0 = unblocked, blank = measured before blocks existed):",
            "",
        ]
        lines += ["| batch | model | layer | groups | dense ms | pattern ms | block | kept |"]
        lines += ["|---|---|---|---|---|---|---|---|"]
        for r in s["batches"]:
            for model, layers in r["layers"].items():
                for n, v in layers.items():
                    groups = " ".join(f"{g}:{''.join(map(str, t))}" for g, t in v["layout"])
                    lines.append(
                        f"| {r['batch']} | {model} | {n} | {groups} | {v.get('dense_ms', '')} "
                        f"| {v.get('pattern_ms', '')} | {v.get('block_rows', '')} | {v['kept']} |"
                    )
        lines += ["", s.get("note", ""), ""]
    if "accuracy" in res:
        a = res["accuracy"]
        lines += [
            "## Accuracy cost: shared patterns against per-kernel R-TOSS at equal sparsity",
            "",
            f"Dense model: shipped `{a['dense_model']}` (signs). Only 3×3 convs masked in both. "
            f"Fine-tune: {a['finetune_epochs']} epoch(s) on {a['train_size']} training images, "
            f"same settings for every row. Top-1 on the first {a['test_size']} test images. "
            f"CPU: {a['cpu']}. Command: `{a['command']}`.",
            "",
            "| model | 3×3 zeros | top-1 one-shot | top-1 fine-tuned |",
            "|---|---|---|---|",
        ]
        for r in a["rows"]:
            if r["model"] == "dense":
                lines.append(f"| dense | 0 | {100 * r['top1']:.2f} | |")
                continue
            lines.append(
                f"| {r['model']} | {100 * r['sparsity_3x3']:.1f}% | "
                f"{100 * r['one_shot_top1']:.2f} | {100 * r['finetuned_top1']:.2f} |"
            )
        lines += ["", a.get("note", "")]
    return "\n".join(lines) + "\n"


def save(res: dict, section: str | None = None) -> None:
    """Write ``res`` (only its ``section`` over what the file now holds, when given)."""
    if section is not None:
        res = {**(json.loads(OUT.read_text()) if OUT.exists() else {}), section: res[section]}
    write_text_atomic(OUT, json.dumps(res, indent=2, default=str) + "\n")
    write_text_atomic(OUT.with_suffix(".md"), render(res))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--batch", default="1,8")
    p.add_argument("--render", action="store_true")
    p.add_argument("--stem", default="pattern_speed", help="results file name (one per CPU)")
    args = p.parse_args()
    global OUT
    OUT = RESULTS / f"{args.stem}.json"
    res = json.loads(OUT.read_text()) if OUT.exists() else {}
    if args.render:
        save(res)
        return
    import onnxruntime

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    speed = {
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "ort": onnxruntime.__version__,
        "threads": args.threads,
        "runs": args.runs,
        "groups": GROUPS,
        "command": f"python benchmarks/pattern_speed.py --threads {args.threads} "
        f"--runs {args.runs} --batch {args.batch}"
        + (f" --stem {args.stem}" if args.stem != "pattern_speed" else ""),
        "load_before": load(),
        "batches": [],
    }
    dense = random_bn_(build_zoo_model("resnet18"))
    x1 = torch.randn(1, 3, 224, 224)
    folded = fold_bn(copy.deepcopy(dense), x1).to(memory_format=torch.channels_last).eval()
    with tempfile.TemporaryDirectory() as d:
        onnx_path = Path(d) / "dense.onnx"
        export_onnx(dense, InputSpec((1, 3, 224, 224)), onnx_path)
        for b in (int(v) for v in args.batch.split(",")):
            speed["batches"].append(run_batch(dense, folded, onnx_path, b, args.threads, args.runs))
            res["speed"] = speed
            save(res, "speed")
            print(json.dumps(speed["batches"][-1]["ms"]), flush=True)
    print(render(json.loads(OUT.read_text())))


if __name__ == "__main__":
    main()
