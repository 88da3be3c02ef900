"""Every deploy runtime and precision on a few models, timed interleaved in one run.

For each model: eager PyTorch FP32 is the baseline; then every native (runtime,
precision) pair this CPU has (``edgeslim.bench.runtimes.candidates``): ONNX Runtime and
OpenVINO on the FP32 file (and BF16 where the CPU has BF16 kernels), both on the INT8
QDQ file (W8A8 per-channel, calibrated on random inputs: latency does not depend on
the calibration data), and PyTorch eager and ``torch.compile`` in FP32/BF16. All
targets of one model run in one interleaved loop per batch size, so a burst of noise
hits them alike. Writes ``benchmarks/results/runtimes_<cpu tag>.{json,md}``.

    python benchmarks/runtimes.py [--models resnet18,mobilenet_v2,default,bert_tiny]
                                  [--runs 20] [--threads 2] [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

import torch

from edgeslim.bench.latency import measure, module_target, onnx_target, torch_target
from edgeslim.bench.machine import machine_info, machine_line
from edgeslim.bench.macs import count_macs
from edgeslim.bench.runtimes import candidates
from edgeslim.export.onnx import export_onnx
from edgeslim.export.runtimes import runtimes_summary
from edgeslim.models.spec import load_model
from edgeslim.quant.config import PTQConfig
from edgeslim.quant.ptq import quantize_ptq
from edgeslim.quant.qdq import export_qdq

OUT = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]
SPECS = {
    "resnet18": "resnet18",
    "mobilenet_v2": "mobilenet_v2",
    "default": "resnet18_small_half",  # the model of `edgeslim compress` with no recipe
    "bert_tiny": f"hf:{ROOT / 'recipes' / 'bert_tiny.json'}",
}


def _targets(name: str, lm, tmp: Path, compile_ok: bool) -> list:
    fp32 = export_onnx(lm.model, lm.input, tmp / f"{name}.onnx").path
    calib = [lm.input.example(batch=8) for _ in range(4)]
    qm = quantize_ptq(lm.model, calib, PTQConfig(calib_batches=4), progress=False)
    int8 = export_qdq(qm.model, lm.input, tmp / f"{name}.int8.onnx", atol=None).path
    out = [torch_target(lm.model, lm.input, "torch fp32")]
    for path in (fp32, int8):
        for c in candidates(path, module_ok=False):
            out.append(onnx_target(path, c.label, lm.input, runtime=c.runtime, precision=c.hint))
    runtimes = ["torch", "torch_compile"] if compile_ok else ["torch"]
    for c in candidates(None, runtimes=runtimes):
        if c.label != "torch fp32":
            out.append(
                module_target(lm.model, lm.input, c.label, runtime=c.runtime, precision=c.precision)
            )
    return out


def _row(name: str, lm, rep, batches) -> dict:
    row = {
        "model": name,
        "spec": SPECS[name] if not SPECS[name].startswith("hf:") else "hf:recipes/bert_tiny.json",
        "input": list(lm.input.shape),
        "macs": count_macs(lm.model, lm.input.example())[0],
        "ms": {},
    }
    for r in rep.results:
        row["ms"].setdefault(r["model"], {})[str(r["batch"])] = round(r["median_ms"], 3)
    for b in batches:
        base = row["ms"]["torch fp32"][str(b)]
        best = min(row["ms"], key=lambda k: row["ms"][k][str(b)])
        row[f"best_b{b}"] = {"target": best, "speedup": round(base / row["ms"][best][str(b)], 2)}
    return row


def _markdown(rows: list[dict], batches, machine: str, threads: int) -> str:
    lines = [
        "# Deploy runtimes and precisions, interleaved",
        "",
        f"{machine.rstrip('.')}; {threads} threads; median ms; "
        "speedup vs eager PyTorch FP32 in brackets.",
        "",
    ]
    for r in rows:
        lines += [
            f"## {r['model']} (`{r['spec']}`, input {'x'.join(map(str, r['input']))}, "
            f"{r['macs'] / 1e6:.0f} MMACs)",
            "",
            "| runtime precision | " + " | ".join(f"batch {b}" for b in batches) + " |",
            "|---|" + "---|" * len(batches),
        ]
        for label, ms in r["ms"].items():
            cells = []
            for b in batches:
                base = r["ms"]["torch fp32"][str(b)]
                cells.append(f"{ms[str(b)]:.2f} ({base / ms[str(b)]:.2f}x)")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        best = ", ".join(
            f"batch {b}: {r[f'best_b{b}']['target']} {r[f'best_b{b}']['speedup']}x" for b in batches
        )
        lines += ["", f"Fastest: {best}.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(SPECS))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--tag", default=None, help="result file suffix (default: the CPU)")
    args = ap.parse_args()
    batches = (1, 8)
    info = machine_info()
    machine = machine_line(info)
    rows = []
    for name in args.models.split(","):
        lm = load_model(SPECS[name])
        with tempfile.TemporaryDirectory() as d, torch.no_grad():
            targets = _targets(name, lm, Path(d), not args.no_compile)
            rep = measure(targets, batches, runs=args.runs, threads=args.threads)
        rows.append(_row(name, lm, rep, batches))
        print(json.dumps(rows[-1]))
    tag = args.tag or re.sub(r"[^a-z0-9]+", "_", str(info.get("cpu", "cpu")).lower()).strip("_")
    OUT.mkdir(exist_ok=True)
    doc = {"machine": machine, "threads": args.threads, "runtimes": runtimes_summary()}
    doc["rows"] = rows
    (OUT / f"runtimes_{tag}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (OUT / f"runtimes_{tag}.md").write_text(_markdown(rows, batches, machine, args.threads))


if __name__ == "__main__":
    main()
