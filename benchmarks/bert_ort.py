"""BERT on ONNX Runtime: FP32 against static INT8 QDQ, dynamic INT8 and INT4 MatMulNBits.

Issue 16, part 3. Two models:

* ``task``: the 6-layer text teacher (hidden 128, 4 heads, FFN 512) trained on
  ``textlogic`` (``benchmarks/text_models.trained_teacher`` when that module is
  present, shared with the other issue-16 benchmarks and cached; otherwise a teacher
  with the same config trained here for ``--teacher-epochs`` and cached);
* ``wide``: a random 4-layer BERT, hidden 512, 8 heads, FFN 2048 (speed only), since
  INT8 gains on hidden-128 GEMMs are small.

Each model is exported once per sequence length (64, 128): FP32; static INT8 QDQ
(edgeslim PTQ, W8A8 per-channel, every MatMul/Gemm including attention, calibrated on
the task's train split, at that length); ORT ``quantize_dynamic`` (per-channel INT8);
ORT ``MatMulNBits`` INT4 (blocks of 32, symmetric), with float activations (ORT's
default) and with ``accuracy_level=4`` (INT8 activations); OpenVINO FP32 and INT8 on
the same FP32 and QDQ files when OpenVINO is installed. All targets of one (model,
length) are timed interleaved in one loop per batch size
(:func:`edgeslim.bench.latency.measure`). Accuracy: each file, on the runtime that
times it, on the task's test split at the task's length (64).

    python benchmarks/bert_ort.py --quick            # < 8 min on 2 quiet cores
    python benchmarks/bert_ort.py [--threads 2] [--runs 30] [--models task,wide]

Writes ``benchmarks/results/bert_ort.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeslim.bench.accuracy import evaluate_model, evaluate_onnx  # noqa: E402
from edgeslim.bench.latency import measure, onnx_target  # noqa: E402
from edgeslim.bench.machine import machine_info, machine_line  # noqa: E402
from edgeslim.core.atomic import write_text_atomic  # noqa: E402
from edgeslim.data import dataset_info, load_dataset, make_loader  # noqa: E402
from edgeslim.export.onnx import export_onnx  # noqa: E402
from edgeslim.export.ort_quant import OrtQuantConfig, quantize_onnx  # noqa: E402
from edgeslim.export.runtimes import available_runtimes, runtimes_summary  # noqa: E402
from edgeslim.models.hf import build_hf  # noqa: E402
from edgeslim.models.inputs import InputSpec  # noqa: E402
from edgeslim.quant.config import PTQConfig  # noqa: E402
from edgeslim.quant.ptq import quantize_ptq  # noqa: E402
from edgeslim.quant.qdq import export_qdq  # noqa: E402

OUT = ROOT / "benchmarks" / "results"
DATA = "textlogic"
TASK = "sequence_classification"
WIDE = {
    "model_type": "bert",
    "vocab_size": 1000,
    "hidden_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "intermediate_size": 2048,
    "max_position_embeddings": 128,
    "num_labels": 2,
}
# label, runtime, precision hint, file key
TARGETS = [
    ("ORT fp32", "onnxruntime", "fp32", "fp32"),
    ("ORT int8 static QDQ", "onnxruntime", "fp32", "qdq"),
    ("ORT int8 dynamic", "onnxruntime", "fp32", "dynamic"),
    ("ORT int4 MatMulNBits", "onnxruntime", "fp32", "int4"),
    ("ORT int4 MatMulNBits acc4", "onnxruntime", "fp32", "int4_acc4"),
    ("OpenVINO fp32", "openvino", "fp32", "fp32"),
    ("OpenVINO int8 (QDQ file)", "openvino", "fp32", "qdq"),
]


def task_teacher(epochs: int):
    """The shared cached teacher when benchmarks/text_models.py exists, else one trained here."""
    try:
        from benchmarks.text_models import trained_teacher
    except ImportError:
        return _local_teacher(epochs)
    return trained_teacher(DATA, seed=0).model.eval(), "benchmarks.text_models.trained_teacher"


def _local_teacher(epochs: int):
    from edgeslim.core.paths import cache_dir
    from edgeslim.train.config import TrainConfig
    from edgeslim.train.trainer import Trainer

    info = dataset_info(DATA)
    cfg = {**WIDE, "vocab_size": info.vocab_size, "num_labels": info.num_classes}
    cfg.update(hidden_size=128, num_hidden_layers=6, num_attention_heads=4, intermediate_size=512)
    torch.manual_seed(0)
    model = build_hf(cfg)
    path = cache_dir("bert_ort") / f"teacher-{info.version}-e{epochs}.pt"
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
    else:
        tc = TrainConfig(epochs=epochs, batch_size=64, lr=1e-3, optimizer="adamw",
                         weight_decay=0.01, augment=False, seed=0, warmup_epochs=1.0)  # fmt: skip
        Trainer(model, tc, progress=False, task=TASK).fit(
            load_dataset(DATA, "train"), load_dataset(DATA, "val")
        )
        torch.save(model.state_dict(), path)
    return model.eval(), f"6-layer teacher trained here ({epochs} epochs, same config)"


def build_files(model, seq: int, calib_data: str | None, batches: int, tmp: Path) -> dict:
    """Every variant's ONNX file for ``model`` at sequence length ``seq``."""
    vocab = model.hf.config.vocab_size
    spec = InputSpec((1, seq), "int64", vocab)
    files = {"fp32": export_onnx(model, spec, tmp / "fp32.onnx").path}
    if calib_data:
        loader = make_loader(load_dataset(calib_data, "train"), 32, shuffle=True, seed=0)
    else:  # speed only: random tokens
        loader = [spec.example(batch=32, seed=i) for i in range(batches)]
    qm = quantize_ptq(model, loader, PTQConfig(calib_batches=batches), progress=False)
    # ORT's integer requantization drifts from the simulation on wide activations; what is
    # reported is ORT's own accuracy, so the simulation check is not the gate here
    files["qdq"] = export_qdq(qm.model, spec, tmp / "qdq.onnx", atol=None).path
    for key, cfg in (
        ("dynamic", OrtQuantConfig("dynamic")),
        ("int4", OrtQuantConfig("int4")),
        ("int4_acc4", OrtQuantConfig("int4", accuracy_level=4)),
    ):
        files[key] = quantize_onnx(files["fp32"], tmp / f"{key}.onnx", cfg).path
    return files


def targets_for(files: dict, spec: InputSpec, openvino: bool) -> list:
    out = []
    for label, rt, hint, key in TARGETS:
        if rt == "openvino" and not openvino:
            continue
        out.append(onnx_target(files[key], label, spec, runtime=rt, precision=hint))
    return out


def accuracy(model, files: dict, openvino: bool) -> dict:
    test = make_loader(load_dataset(DATA, "test"), 256, shuffle=False)
    acc = {"eager fp32": evaluate_model(model, test, TASK)["top1"]}
    for label, rt, hint, key in TARGETS:
        if rt == "openvino" and not openvino:
            continue
        acc[label] = evaluate_onnx(files[key], test, TASK, runtime=rt, precision=hint)["top1"]
    return acc


def run_model(name, model, seqs, args, openvino, calib) -> dict:
    row: dict = {"model": name, "seqs": {}}
    for seq in seqs:
        with tempfile.TemporaryDirectory() as d, torch.no_grad():
            data = f"{DATA}:{seq}" if calib else None
            files = build_files(model, seq, data, args.calib_batches, Path(d))
            spec = InputSpec((1, seq), "int64", model.hf.config.vocab_size)
            rep = measure(
                targets_for(files, spec, openvino),
                tuple(args.batches),
                runs=args.runs,
                threads=args.threads,
                progress=False,
            )
            cell = {
                "size_bytes": {k: p.stat().st_size for k, p in files.items()},
                "ms": {},
            }
            for r in rep.results:
                cell["ms"].setdefault(r["model"], {})[str(r["batch"])] = round(r["median_ms"], 3)
            if calib and seq == dataset_info(DATA).input_shape[0]:
                row["top1"] = accuracy(model, files, openvino)
        row["seqs"][str(seq)] = cell
        print(json.dumps({"model": name, "seq": seq, **cell}), flush=True)
    return row


def markdown(doc: dict) -> str:
    lines = [
        "# BERT on ONNX Runtime: FP32, static INT8 QDQ, dynamic INT8, INT4 MatMulNBits",
        "",
        f"Command: `{doc['command']}`",
        "",
        f"{doc['machine'].rstrip('.')}. Median ms of {doc['runs']} "
        "interleaved runs; speedup against ORT FP32 of the same model, length and batch in "
        f"brackets. Load: {doc['load']}.",
        "",
        "What runs in integers: *static QDQ*: every MatMul/Gemm, attention's Q K^T and A V "
        "included (QLinearMatMul, MatMulIntegerToFloat, QGemm), softmax and GELU in float; "
        "*dynamic*: the Linear layers' MatMuls (activations quantized per run), attention "
        "and the pooler/classifier Gemms in float; *int4*: Linear MatMuls as "
        "`com.microsoft::MatMulNBits` (4-bit weights, blocks of 32, symmetric; float "
        "activations, or INT8 activations with `acc4` = `accuracy_level=4`); embeddings and "
        "the Gemms stay FP32, so the file shrinks less than the Linear weights (~6x). "
        "OpenVINO runs the same FP32 and QDQ files (`INFERENCE_PRECISION_HINT=f32`).",
        "",
    ]
    for row in doc["rows"]:
        lines += [f"## {row['model']}: {row['desc']}", ""]
        seqs = list(row["seqs"])
        cols = [(s, b) for s in seqs for b in doc["batches"]]
        head = " | ".join(f"seq {s} batch {b}" for s, b in cols)
        lines += [
            f"| target | {head} | size (seq {seqs[0]} file) |",
            "|---|" + "---|" * (len(cols) + 1),
        ]
        labels = list(row["seqs"][seqs[0]]["ms"])
        for label in labels:
            cells = []
            for s, b in cols:
                ms = row["seqs"][s]["ms"][label][str(b)]
                base = row["seqs"][s]["ms"]["ORT fp32"][str(b)]
                cells.append(f"{ms:.2f} ({base / ms:.2f}x)")
            key = next(k for lab, _, _, k in TARGETS if lab == label)
            size = row["seqs"][seqs[0]]["size_bytes"][key]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {size / 1e6:.2f} MB |")
        if "top1" in row:
            lines += ["", f"Test top-1 on `{DATA}` (1000 samples, length 64):", ""]
            lines += ["| target | top-1 | vs ORT fp32 |", "|---|---|---|"]
            ref = row["top1"]["ORT fp32"]
            for label, acc in row["top1"].items():
                lines.append(f"| {label} | {100 * acc:.1f}% | {100 * (acc - ref):+.1f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs and calibration batches")
    ap.add_argument("--models", default="task,wide")
    ap.add_argument("--seqs", default="64,128")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--runs", type=int, default=None, help="timed runs (default 30, quick 12)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib-batches", type=int, default=None, help="default 16, quick 8")
    ap.add_argument("--teacher-epochs", type=int, default=6, help="local teacher only")
    ap.add_argument("--no-openvino", action="store_true")
    ap.add_argument("--load", default="not recorded", help="load conditions, for the report")
    ap.add_argument("--tag", default="", help="result file suffix")
    ap.add_argument(
        "--combine", nargs="+", default=None, metavar="JSON", help="merge earlier runs' results"
    )
    args = ap.parse_args()
    if args.combine:
        return combine([Path(f) for f in args.combine], args.tag)
    args.runs = args.runs or (12 if args.quick else 30)
    args.calib_batches = args.calib_batches or (8 if args.quick else 16)
    args.batches = [int(b) for b in args.batches.split(",")]
    seqs = [int(s) for s in args.seqs.split(",")]
    torch.set_num_threads(args.threads)
    openvino = not args.no_openvino and "openvino" in available_runtimes()
    t0 = time.time()
    rows = []
    for name in args.models.split(","):
        if name == "task":
            model, how = task_teacher(args.teacher_epochs)
            row = run_model(name, model, seqs, args, openvino, calib=True)
            cfg = model.hf.config
            row["desc"] = (
                f"{cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, "
                f"{cfg.num_attention_heads} heads, FFN {cfg.intermediate_size}; {how}"
            )
        elif name == "wide":
            torch.manual_seed(0)
            row = run_model(name, build_hf(WIDE).eval(), seqs, args, openvino, calib=False)
            row["desc"] = "4 layers, hidden 512, 8 heads, FFN 2048; random weights (speed only)"
        else:
            raise SystemExit(f"unknown model {name!r}: task or wide")
        rows.append(row)
    doc = {
        "command": "python benchmarks/bert_ort.py " + " ".join(sys.argv[1:]),
        "machine": machine_line(machine_info(args.threads)),
        "threads": args.threads,
        "runs": args.runs,
        "batches": args.batches,
        "load": args.load,
        "runtimes": runtimes_summary(),
        "seconds": round(time.time() - t0),
        "rows": rows,
    }
    stem = f"bert_ort{('_' + args.tag) if args.tag else ''}"
    write_text_atomic(OUT / f"{stem}.json", json.dumps(doc, indent=2) + "\n")
    write_text_atomic(OUT / f"{stem}.md", markdown(doc))
    print(f"wrote {OUT / stem}.md ({doc['seconds']} s)")


def combine(paths: list[Path], tag: str) -> None:
    """One report from runs made separately (e.g. one per model), same settings each."""
    docs = [json.loads(p.read_text()) for p in paths]
    doc = {**docs[0], "rows": [r for d in docs for r in d["rows"]]}
    doc["command"] = "`; `".join(d["command"] for d in docs)
    doc["seconds"] = sum(d["seconds"] for d in docs)
    stem = f"bert_ort{('_' + tag) if tag else ''}"
    write_text_atomic(OUT / f"{stem}.json", json.dumps(doc, indent=2) + "\n")
    write_text_atomic(OUT / f"{stem}.md", markdown(doc))
    print(f"wrote {OUT / stem}.md")


if __name__ == "__main__":
    main()
