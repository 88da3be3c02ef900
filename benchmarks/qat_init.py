"""Top-1 of the QAT models right after calibration, before any training (issue 13).

The hypothesis behind LSQ ``init="mse"``: the paper's step rule
(``s = 2 <|v|> / sqrt(Qp)``, Esser et al. 2020) starts ResNet-20 far below the FP32
model at 4 bits and at chance at 2 bits, so a short fine-tune cannot catch up; the
least-squared-error steps should start closer. This script quantizes the cached
FP32 ResNet-20 of ``benchmarks/qat.py`` exactly as that script does (stem and
classifier at W8A8, 4 calibration batches, BN folded in simulation), trains
nothing, and reports:

* top-1 on the first ``--test-samples`` test images;
* per layer, on one calibration-sized training batch: the share of input values
  and of weights that round to zero, the share of inputs clipped at the top of the
  grid, and the step sizes.

Run after ``benchmarks/qat.py`` has cached the FP32 model (1 thread, ``nice``):

    nice -n 10 python benchmarks/qat_init.py --methods lsq,lsq+mse --bits 4,2 \\
        --results benchmarks/results/qat_intel_amx
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import Subset

from benchmarks.qat import CALIB_BATCHES, RESULTS, calib, exact, keep_8bit, parse_method
from edgeslim.bench.accuracy import evaluate_model, primary_value
from edgeslim.bench.machine import machine_info, machine_line
from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import apply
from edgeslim.core.modes import eval_mode
from edgeslim.data import load_dataset, make_loader
from edgeslim.models.saved import is_saved_model, load_saved
from edgeslim.quant.qat import CONFIGS
from edgeslim.quant.qat.handler import observe_inputs_, reestimate_bn_
from edgeslim.quant.qat.layers import qat_layers


def quantized(
    base, method: str, bits: int, a_bits: int, seed: int, sequential: bool = False, bn: bool = False
):
    """The model ``benchmarks/qat.py`` would start training from (W``bits`` A``a_bits``).

    ``sequential``: a diagnostic, not what QAT does; afterwards each input quantizer
    is calibrated again in layer order, on the inputs the already-quantized layers
    before it produce (one pass calibrates them all on float inputs). ``bn``: a
    diagnostic too; the BatchNorm layers left unfolded (``+nofold``) get their running
    statistics re-estimated on the quantized model first (16 calibration batches).
    """
    name, fields = parse_method(method)
    cfg = CONFIGS[name](w_bits=bits, a_bits=a_bits, calib_batches=CALIB_BATCHES, **fields)
    overrides = {exact(n): replace(cfg, w_bits=8, a_bits=8) for n in keep_8bit(base.model)}
    torch.manual_seed(seed)
    model, _ = apply(base.model, cfg, overrides=overrides, calib=calib(seed))
    if bn:
        reestimate_bn_(model, calib(seed), 16)
    if sequential:
        for _, layer in qat_layers(model):
            if layer.input_q is not None:
                layer.input_q.forget_()
                observe_inputs_(model, [layer.input_q], calib(seed), CALIB_BATCHES)
    return model


def _codes(q, x: torch.Tensor) -> torch.Tensor:
    g = q.grid(x)
    s = g.scale.reshape([-1] + [1] * (x.dim() - 1)) if g.scale.numel() > 1 else g.scale
    return torch.clamp(torch.round(x / s), g.qmin, g.qmax), g


@torch.no_grad()
def layer_stats(model, batch: torch.Tensor) -> list[dict]:
    """Per QAT layer: zero and clip shares of its input codes, zero share of its weight codes."""
    inputs: dict[str, torch.Tensor] = {}
    hooks = [
        layer.register_forward_pre_hook(lambda m, a, n=name: inputs.__setitem__(n, a[0]))
        for name, layer in qat_layers(model)
    ]
    try:
        with eval_mode(model):
            model(batch)
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for name, layer in qat_layers(model):
        row = {"layer": name, "bits": layer.input_q.bits if layer.input_q else None}
        if layer.input_q is not None:
            q, g = _codes(layer.input_q, inputs[name])
            row["act_step"] = round(float(g.scale.reshape(-1)[0]), 5)
            row["act_zero"] = round(float((q == 0).float().mean()), 4)
            row["act_clip_hi"] = round(float((q == g.qmax).float().mean()), 4)
            row["act_max"] = round(float(inputs[name].max()), 4)
        w = layer.folded()[0]
        q, g = _codes(layer.weight_q, w)
        row["w_step"] = round(float(g.scale.reshape(-1)[0]), 5)
        row["w_zero"] = round(float((q == 0).float().mean()), 4)
        dead = (q == 0).reshape(q.shape[0], -1).all(1)  # output channels with all codes 0
        row["w_dead_channels"] = round(float(dead.float().mean()), 4)
        row["w_absmax_over_step"] = round(float(w.abs().max() / g.scale.max()), 2)
        rows.append(row)
    return rows


KEEP_8BIT = ("conv1", "fc")  # ResNet-20's stem and classifier: keep_8bit() of that model


def _low_bit_mean(layers: list[dict]):
    low = [x for x in layers if x["layer"] not in KEEP_8BIT]
    return lambda key: sum(x[key] for x in low) / max(len(low), 1)


def markdown(doc: dict) -> str:
    lines = [
        "# LSQ step-size initialisation: top-1 before any QAT (issue 13)",
        "",
        machine_line(doc["machine"]),
        "",
        f"FP32 ResNet-20 (cached by benchmarks/qat.py): **{doc['fp32_top1']:.2%}** on "
        f"{doc['test_samples']} test images. Each model below is quantized as benchmarks/qat.py "
        "does (stem and classifier W8A8, 4 calibration batches, BN folded) and evaluated "
        "with no training. Zero/clip shares: on one batch of 128 training images, mean over "
        "the layers at the low bit width (stem and classifier left out).",
        "",
        "| method | bits | seed | top-1 | vs FP32 (pts) | input codes = 0 | inputs clipped | "
        "weight codes = 0 | channels all 0 | load (1 min) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in doc["runs"].values():
        mean = _low_bit_mean(r["layers"])
        seq = " (sequential calibration)" if r.get("sequential_calibration") else ""
        dead = f"{mean('w_dead_channels'):.1%}" if "w_dead_channels" in r["layers"][0] else ""
        seq += " (BN re-estimated)" if r.get("bn_reestimated") else ""
        lines.append(
            f"| {r['method']}{seq} | W{r['bits']}A{r.get('a_bits', r['bits'])} | {r['seed']} | "
            f"{r['top1']:.2%} | "
            f"{100 * (r['top1'] - doc['fp32_top1']):+.2f} | {mean('act_zero'):.1%} | "
            f"{mean('act_clip_hi'):.1%} | {mean('w_zero'):.1%} | {dead} | "
            f"{r['load_1min'][0]:.2f} to {r['load_1min'][1]:.2f} |"
        )
    lines += ["", "## Commands", "", "```", *doc["commands"], "```", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="lsq,lsq+mse")
    p.add_argument("--bits", default="4,2")
    p.add_argument("--a-bits", type=int, default=None, help="activation bits (default: --bits)")
    p.add_argument("--sequential", action="store_true", help="diagnostic: see quantized()")
    p.add_argument("--reestimate-bn", action="store_true", help="diagnostic: see quantized()")
    p.add_argument("--seeds", default="0")
    p.add_argument("--train-samples", type=int, default=10000)
    p.add_argument("--pretrain-epochs", type=int, default=8)
    p.add_argument("--test-samples", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default="/tmp/edgeslim-qat-bench")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    path = Path(args.cache) / f"resnet20-signs-{args.train_samples}-{args.pretrain_epochs}ep"
    if not is_saved_model(path):
        raise EdgeslimError(f"no cached FP32 model at {path}: run benchmarks/qat.py first")
    base = load_saved(path)
    test_set = Subset(load_dataset("signs", "test"), range(args.test_samples))
    test = make_loader(test_set, 250, shuffle=False)
    torch.manual_seed(0)
    batch = next(iter(make_loader(load_dataset("signs", "train"), 128, shuffle=True)))[0]
    doc = {
        "machine": machine_info(threads=args.threads),
        "fp32_top1": round(primary_value(evaluate_model(base.model, test)), 4),
        "test_samples": args.test_samples,
        "commands": ["nice -n 10 python " + " ".join(shlex.quote(a) for a in sys.argv)],
        "runs": {},
    }
    for bits in [int(b) for b in args.bits.split(",")]:
        for method in args.methods.split(","):
            for seed in [int(s) for s in args.seeds.split(",")]:
                load, t0 = os.getloadavg()[0], time.perf_counter()
                a_bits = args.a_bits or bits
                model = quantized(
                    base, method, bits, a_bits, seed, args.sequential, args.reestimate_bn
                )
                top1 = primary_value(evaluate_model(model, test))
                run = {
                    "method": method,
                    "bits": bits,
                    "a_bits": a_bits,
                    "sequential_calibration": args.sequential,
                    "bn_reestimated": args.reestimate_bn,
                    "seed": seed,
                    "top1": round(top1, 4),
                    "seconds": round(time.perf_counter() - t0, 1),
                    "load_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
                    "layers": layer_stats(model, batch),
                }
                tags = ("+seq" if args.sequential else "") + ("+bn" if args.reestimate_bn else "")
                key = f"{method}{tags}_W{bits}A{a_bits}_s{seed}"
                print(f"{key}: top-1 {top1:.2%}", flush=True)
                doc["runs"][key] = run
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "qat_init.json").is_file():  # earlier runs stay; same FP32 model assumed
        old = json.loads((out / "qat_init.json").read_text())
        doc["runs"] = {**old["runs"], **doc["runs"]}
        doc["commands"] = old["commands"] + [c for c in doc["commands"] if c not in old["commands"]]
    write_text_atomic(out / "qat_init.json", json.dumps(doc, indent=2) + "\n")
    write_text_atomic(out / "qat_init.md", markdown(doc))


def rewrite_markdown(results: str) -> None:
    """``qat_init.md`` again from ``qat_init.json`` (after an edit of :func:`markdown`)."""
    doc = json.loads((Path(results) / "qat_init.json").read_text())
    write_text_atomic(Path(results) / "qat_init.md", markdown(doc))


if __name__ == "__main__":
    main()
