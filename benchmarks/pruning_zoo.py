"""Pruning zoo: prune every torchvision classifier edgeslim can load, and the zoo's own, and
measure whether the result is actually faster; Torch-Pruning 1.6.1 on the same models.

For each model and channel ratio (default 30% and 50%, L1 criterion, uniform):

- edgeslim: ``prune`` with the default alignment (``round_to="auto"``: the multiple the
  FP32 ONNX Runtime latency staircase favours on this CPU, :mod:`edgeslim.prune.align`)
  and the never-slower rule of ``edgeslim prune`` (re-aligned to coarser steps while it
  measures slower, :mod:`edgeslim.workflows.speed_check`);
- Torch-Pruning 1.6.1 (benchmark only, not a dependency): ``MetaPruner`` with group L1
  magnitude (``GroupMagnitudeImportance(p=1)``) at the same ``pruning_ratio``, the
  classifier output layer ignored, its default widths (no ``round_to``);
- MACs and parameters (edgeslim's counter for both) and FP32 ONNX Runtime latency of
  input, edgeslim's and Torch-Pruning's models at batch 1 and 8, timed in ONE
  interleaved loop, so the ratios hold on a noisy machine; failures with their reason.

Writes ``benchmarks/results/pruning_zoo.{json,md}`` (after every model, so an
interrupted sweep keeps what it measured; ``--resume`` skips rows already there), with
the CPU model. Needs torchvision (``pip install -c constraints.txt torchvision==0.28.0``)
and ``pip install torch-pruning==1.6.1``. Run the full sweep on a quiet machine:

    python benchmarks/pruning_zoo.py --runs 20 --threads 2

and a smoke test with:

    python benchmarks/pruning_zoo.py --models tv:mobilenet_v2,resnet20 --ratios 0.3 --quick
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import platform
import subprocess
import time
import traceback
from pathlib import Path

import torch
from torch import nn

from edgeslim.bench.macs import count_macs, count_params
from edgeslim.bench.staircase import cpu_model, runtime_name
from edgeslim.models.spec import load_model
from edgeslim.prune import PruneConfig, prune
from edgeslim.prune.align import coarser, resolve_alignment
from edgeslim.workflows.measure import Stage, measure_stages
from edgeslim.workflows.speed_check import SpeedCheck, realign_loop, speedups

OUT = Path(__file__).parent / "results"
MOBILE = ("mobilenet_v2", "mobilenet_v3", "mnasnet", "efficientnet_b0", "shufflenet")


def all_models() -> list[str]:
    """Every torchvision classification model (``tv:NAME``) and every zoo model."""
    from edgeslim.models.tv import import_torchvision
    from edgeslim.models.zoo import ZOO

    tv = import_torchvision()
    return [f"tv:{n}" for n in tv.models.list_models(module=tv.models)] + list(ZOO.names())


def lscpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return cpu_model()


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"


def classifier_layers(model: nn.Module, num_classes: int) -> list[nn.Module]:
    """The layers producing the logits (Torch-Pruning must not prune them)."""
    out = [
        m
        for m in model.modules()
        if (isinstance(m, nn.Linear) and m.out_features == num_classes)
        or (isinstance(m, nn.Conv2d) and m.out_channels == num_classes)
    ]
    return out


def torch_pruning(model: nn.Module, example: torch.Tensor, ratio: float) -> nn.Module:
    """Torch-Pruning 1.6.1's uniform group-L1 pruning of a copy of ``model``."""
    import torch_pruning as tp

    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        n_out = m(example).shape[-1]
    pruner = tp.pruner.MetaPruner(
        m,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=1),
        pruning_ratio=ratio,
        ignored_layers=classifier_layers(m, n_out),
    )
    pruner.step()
    with torch.no_grad():
        if m(example).shape != model(example).shape:
            raise RuntimeError("Torch-Pruning changed the output shape")
    return m


def three_stages(model, tp_model, es_model, spec, **runtime) -> list[Stage]:
    """Input, Torch-Pruning's model (if any) and edgeslim's, last (``speedups()`` compares it)."""
    stages = [Stage("input", model, spec, **runtime)]
    if tp_model is not None:
        stages.append(Stage("torch-pruning", tp_model, spec, **runtime))
    stages.append(Stage("edgeslim", es_model, spec, **runtime))
    return stages


def openvino_speedups(model, tp_model, es_model, spec, timing: dict) -> dict:
    """The same three models timed again, interleaved, on OpenVINO at FP32.

    The precision hint is explicit: on AMX CPUs OpenVINO's default runs an FP32 file
    in BF16, which would not be the FP32 comparison the ORT columns make.
    """
    stages = three_stages(model, tp_model, es_model, spec, runtime="openvino", precision="fp32")
    try:
        by = {r["name"]: r for r in measure_stages(stages, **timing)[0]}
    except Exception as e:  # a row, not a crash
        return {"error": _err(e)}
    out = {"latency_ms": by["input"]["latency_ms"]}
    out["edgeslim"] = speedups([by["input"], by["edgeslim"]])
    if "torch-pruning" in by:
        out["torch_pruning"] = speedups([by["input"], by["torch-pruning"]])
    return out


def bench_one(name: str, ratio: float, args) -> dict:
    """Prune ``name`` at ``ratio`` with edgeslim and Torch-Pruning and time all three."""
    row: dict = {"model": name, "ratio": ratio}
    t0 = time.time()
    try:
        shape = (1, 3, 224, 224) if name.startswith("tv:") else None
        lm = load_model(name, input_shape=shape)
        spec = lm.require_input().with_batch(1)
        x = spec.example()
        row["input_shape"] = list(spec.shape)
        row["macs"] = count_macs(lm.model, x)[0]
        row["params"] = count_params(lm.model)
    except Exception as e:  # any model that cannot load is a row, not a crash
        row["load_error"] = _err(e)
        return row
    tpr: dict = {"ok": False}
    tp_model = None
    if not args.no_tp:
        try:
            tp_model = torch_pruning(lm.model, x, ratio)
            tpr.update(ok=True, macs=count_macs(tp_model, x)[0], params=count_params(tp_model))
        except Exception as e:
            tpr["error"] = _err(e)
            if args.verbose:
                traceback.print_exc()
    es: dict = {"ok": False}
    res = align = None
    # --match-tp: edgeslim prunes to Torch-Pruning's MACs instead of the channel ratio
    target = {"target_macs": tpr["macs"]} if args.match_tp and tpr["ok"] else {"ratio": ratio}
    if args.match_tp and not tpr["ok"]:
        es["error"] = "no Torch-Pruning model to match"
    else:
        try:
            align = resolve_alignment(lm.model, x, args.round_to, threads=args.threads)
            es["round_to"] = align.round_to
            es["alignment_reason"] = align.reason
            es["target"] = target
            res = prune(lm.model, x, PruneConfig(criterion="l1", round_to=align.round_to, **target))
            es.update(ok=True, macs=res.macs[1], params=res.params[1])
        except Exception as e:
            es["error"] = _err(e)
            if args.verbose:
                traceback.print_exc()
    timing = {"batches": (1, 8), "runs": args.runs, "threads": args.threads, "progress": False}

    def measure(r) -> list[dict]:
        stages = three_stages(lm.model, tp_model, r.model, spec)
        try:
            return measure_stages(stages, **timing)[0]
        except Exception as e:  # Torch-Pruning's model may not export; time without it
            if tp_model is None:
                raise
            tpr.update(ok=False, error=f"export/timing: {_err(e)}")
            stages.pop(1)
            return measure_stages(stages, **timing)[0]

    try:
        if res is not None:
            check = SpeedCheck()
            ladder = coarser(align.round_to) if align.source != "user" else []

            def prune_at(a: int):
                return prune(lm.model, x, PruneConfig(criterion="l1", round_to=a, **target))

            res, recs = realign_loop(res, align.round_to, ladder, prune_at, measure, check)
            es.update(
                macs=res.macs[1],
                params=res.params[1],
                round_to_used=check.attempts[check.chosen]["round_to"],
                attempts=check.attempts,
            )
        elif tp_model is not None:
            recs = measure_stages(
                [Stage("input", lm.model, spec), Stage("torch-pruning", tp_model, spec)],
                **timing,
            )[0]
        else:
            recs = []
        by = {r["name"]: r for r in recs}
        if by:
            row["latency_ms"] = by["input"]["latency_ms"]
        if "edgeslim" in by:
            es["speedup"] = speedups([by["input"], by["edgeslim"]])
        if "torch-pruning" in by:
            tpr["speedup"] = speedups([by["input"], by["torch-pruning"]])
        if args.openvino and res is not None:
            row["openvino"] = openvino_speedups(lm.model, tp_model, res.model, spec, timing)
    except Exception as e:
        row["timing_error"] = _err(e)
        if args.verbose:
            traceback.print_exc()
    row["edgeslim"], row["torch_pruning"] = es, tpr
    row["seconds"] = round(time.time() - t0, 1)
    return row


def _f(v: float | None, fmt: str = "{:.2f}x") -> str:
    return fmt.format(v) if v is not None else "-"


def _m(d: dict, key: str, scale: float = 1e6, fmt: str = "{:.0f}") -> str:
    return _f(d[key] / scale if d.get(key) else None, fmt)


def summary(rows: list[dict]) -> dict:
    """The issue's checks: never slower at 30%, geomean speedup vs MAC ratio, mobile at 50%."""
    out: dict = {}
    for ratio in sorted({r["ratio"] for r in rows}):
        rs = [r for r in rows if r["ratio"] == ratio]
        es = [r for r in rs if r.get("edgeslim", {}).get("speedup")]
        tp = [r for r in rs if r.get("torch_pruning", {}).get("speedup")]
        slower = [r["model"] for r in es if min(r["edgeslim"]["speedup"].values()) < 1.0]
        sp = [math.log(s) for r in es for s in r["edgeslim"]["speedup"].values()]
        mac = [
            math.log(r["macs"] / r["edgeslim"]["macs"])
            for r in es
            for _ in r["edgeslim"]["speedup"]
        ]
        geo = math.exp(sum(sp) / len(sp)) if sp else None
        geo_mac = math.exp(sum(mac) / len(mac)) if mac else None
        mobile = {
            r["model"]: min(r["edgeslim"]["speedup"].values())
            for r in es
            if any(k in r["model"] for k in MOBILE)
        }
        out[str(ratio)] = {
            "models": len(rs),
            "edgeslim_pruned": sum(r.get("edgeslim", {}).get("ok", False) for r in rs),
            "torch_pruning_pruned": sum(r.get("torch_pruning", {}).get("ok", False) for r in rs),
            "edgeslim_timed": len(es),
            "torch_pruning_timed": len(tp),
            "edgeslim_slower": slower,
            "geomean_speedup": geo,
            "geomean_mac_ratio": geo_mac,
            "speedup_over_mac_ratio": (math.log(geo) / math.log(geo_mac))
            if geo and geo_mac and geo_mac > 1
            else None,
            "mobile_min_speedup": mobile,
            **_openvino_summary(rs),
        }
    return out


def _openvino_summary(rs: list[dict]) -> dict:
    """OpenVINO FP32 columns: which pruned models run slower, geomean speedups."""
    out: dict = {}
    for who in ("edgeslim", "torch_pruning"):
        sp = [(r["model"], r["openvino"][who]) for r in rs if (r.get("openvino") or {}).get(who)]
        logs = [math.log(v) for _, d in sp for v in d.values()]
        if logs:
            out[f"openvino_{who}_geomean"] = math.exp(sum(logs) / len(logs))
            out[f"openvino_{who}_slower"] = [m for m, d in sp if min(d.values()) < 1.0]
    return out


def write(rows: list[dict], meta: dict, stem: str) -> None:
    OUT.mkdir(exist_ok=True)
    summ = summary(rows)
    (OUT / f"{stem}.json").write_text(
        json.dumps({**meta, "summary": summ, "rows": rows}, indent=1) + "\n"
    )
    lines = [
        "# Pruning zoo: edgeslim (aligned by default) vs Torch-Pruning 1.6.1",
        "",
        f"CPU: {meta['cpu']} ({meta['threads']} threads); {meta['runtime']}; "
        f"{meta['runs']} interleaved runs per model and batch; {meta['date']}.",
        f"Command: `{meta['command']}`",
        "",
        "Speedup = input latency / pruned latency (FP32 ONNX Runtime, same interleaved loop;"
        " the OpenVINO column times the same models again in one loop of their own).",
        "",
        "| model | ratio | MACs M: input -> edgeslim (TP) | params M: edgeslim (TP) | align "
        "| edgeslim b1 / b8 | TP b1 / b8 | OpenVINO FP32: edgeslim b1 / b8 (TP) | failures |",
        "|" + "---|" * 9,
    ]
    for r in rows:
        es, tp = r.get("edgeslim", {}), r.get("torch_pruning", {})
        fails = "; ".join(
            f"{who}: {d['error']}" for who, d in (("edgeslim", es), ("TP", tp)) if d.get("error")
        )
        fails = fails or r.get("load_error") or r.get("timing_error") or ""
        esp, tsp = es.get("speedup") or {}, tp.get("speedup") or {}
        ov = r.get("openvino") or {}
        ove, ovt = ov.get("edgeslim") or {}, ov.get("torch_pruning") or {}
        ov_cell = (
            f"{_f(ove.get('1'))} / {_f(ove.get('8'))} ({_f(ovt.get('1'))} / {_f(ovt.get('8'))})"
            if ove
            else ov.get("error", "-")
        )
        lines.append(
            f"| {r['model']} | {r['ratio']:g} "
            f"| {_m(r, 'macs')} -> {_m(es, 'macs')} ({_m(tp, 'macs')}) "
            f"| {_m(es, 'params', fmt='{:.2f}')} ({_m(tp, 'params', fmt='{:.2f}')}) "
            f"| {es.get('round_to_used', es.get('round_to', '-'))} "
            f"| {_f(esp.get('1'))} / {_f(esp.get('8'))} | {_f(tsp.get('1'))} / {_f(tsp.get('8'))} "
            f"| {ov_cell} | {fails.replace('|', '/')[:160]} |"
        )
    lines += ["", "## Summary", ""]
    for ratio, s in summ.items():
        lines.append(
            f"- ratio {ratio}: {s['edgeslim_pruned']}/{s['models']} pruned by edgeslim, "
            f"{s['torch_pruning_pruned']} by Torch-Pruning; slower than input: "
            f"{', '.join(s['edgeslim_slower']) or 'none'}; geomean speedup "
            f"{_f(s['geomean_speedup'])} at a geomean MAC ratio {_f(s['geomean_mac_ratio'])}"
            f" (log ratio {_f(s['speedup_over_mac_ratio'], '{:.2f}')}); mobile min speedups: "
            + ", ".join(f"{k} {v:.2f}x" for k, v in s["mobile_min_speedup"].items())
        )
        if "openvino_edgeslim_geomean" in s:
            lines.append(
                f"  - OpenVINO FP32: geomean speedup edgeslim "
                f"{s['openvino_edgeslim_geomean']:.2f}x, Torch-Pruning "
                f"{_f(s.get('openvino_torch_pruning_geomean'))}; slower than input: edgeslim "
                f"{', '.join(s['openvino_edgeslim_slower']) or 'none'}, Torch-Pruning "
                f"{', '.join(s.get('openvino_torch_pruning_slower', [])) or 'none'}"
            )
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", default=None, help="comma-separated specs (default: all)")
    ap.add_argument("--ratios", default="0.3,0.5")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--round-to", default="auto", help="edgeslim's alignment (default auto)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 3 runs per batch")
    ap.add_argument("--no-tp", action="store_true", help="skip Torch-Pruning")
    ap.add_argument(
        "--match-tp",
        action="store_true",
        help="edgeslim prunes to Torch-Pruning's MACs (target_macs), not the ratio",
    )
    ap.add_argument(
        "--openvino", action="store_true", help="also time all three on OpenVINO (FP32 hint)"
    )
    ap.add_argument("--resume", action="store_true", help="skip rows already in the output")
    ap.add_argument("--out", default="pruning_zoo", help="output file stem in results/")
    ap.add_argument("--verbose", action="store_true", help="print tracebacks of failures")
    args = ap.parse_args()
    args.round_to = args.round_to if args.round_to == "auto" else int(args.round_to)
    if args.quick:
        args.runs = min(args.runs, 3)
    models = args.models.split(",") if args.models else all_models()
    ratios = [float(r) for r in args.ratios.split(",")]
    import onnxruntime as ort

    meta = {
        "cpu": lscpu_model(),
        "machine": platform.machine(),
        "threads": args.threads,
        "runtime": runtime_name(),
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "runs": args.runs,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/pruning_zoo.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" if not isinstance(v, bool) else f"--{k}"
            for k, v in vars(args).items()
            if v not in (None, False) and k != "verbose"
        ),
    }
    try:
        import torch_pruning

        meta["torch_pruning"] = torch_pruning.__version__
    except ImportError:
        args.no_tp = True
        meta["torch_pruning"] = None
    rows: list[dict] = []
    path = OUT / f"{args.out}.json"
    if args.resume and path.is_file():
        rows = json.loads(path.read_text())["rows"]
    done = {(r["model"], r["ratio"]) for r in rows}
    torch.set_num_threads(args.threads)
    for name in models:
        for ratio in ratios:
            if (name, ratio) in done:
                continue
            row = bench_one(name, ratio, args)
            rows.append(row)
            es, tp = row.get("edgeslim", {}), row.get("torch_pruning", {})
            print(
                f"{name} @ {ratio:g}: edgeslim {es.get('speedup') or es.get('error')} "
                f"(align {es.get('round_to_used', es.get('round_to'))}); "
                f"TP {tp.get('speedup') or tp.get('error')} [{row.get('seconds')} s]",
                flush=True,
            )
            write(rows, meta, args.out)


if __name__ == "__main__":
    main()
