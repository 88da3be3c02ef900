"""Sparsity on the built-in ``signs``: zeros, accuracy and bytes on disk, every kind side by side.

The dense model is the package's shipped, converged ResNet-18-small-half on signs
(``edgeslim/models/weights``; ``--pretrained DIR`` for another saved model; a zoo
model without shipped weights is trained briefly, which leaves it under-trained).
Each sparsity kind is applied one-shot to it; R-TOSS 2EP and magnitude at the
same sparsity are also fine-tuned with their masks for one epoch on a subset
(training stays under 3 minutes on a 2-core CPU). For every model it records the
fraction of zero conv weights, top-1 on the test split, the dense ONNX file (ONNX
Runtime stores zeros like any weight) and the ``edgeslim.sparsity.archive`` sizes
(bitmask + float, INT8 or 4-bit k-means-codebook nonzeros + zstd).

No latency is reported: ONNX Runtime on CPU has no sparse kernels, so these
models run exactly as fast as the dense one.

Usage (the numbers in benchmarks/results/sparsity.md come from exactly this)::

    python benchmarks/sparsity.py --train-size 3000 --finetune-epochs 1
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Subset

from edgeslim.bench.accuracy import evaluate_model, primary_value
from edgeslim.bench.staircase import cpu_model
from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.methods import apply_
from edgeslim.data import dataset_info, load_dataset, make_loader
from edgeslim.export.onnx import export_onnx
from edgeslim.models.saved import is_saved_model, load_saved
from edgeslim.models.shipped import WEIGHTS_DIR
from edgeslim.models.spec import load_model
from edgeslim.sparsity import MagnitudeConfig, NMConfig, RTossConfig, squashed
from edgeslim.sparsity.archive import save_archive
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer

DATA = "signs"
RESULTS = Path(__file__).parent / "results"
KINDS = {  # name -> config; magnitude at R-TOSS 2EP's 7/9 for an equal-sparsity row
    "magnitude 77.8%": MagnitudeConfig(7 / 9),
    "magnitude global 77.8%": MagnitudeConfig(7 / 9, scope="global"),
    "N:M 2:4": NMConfig(2, 4),
    "N:M 1:4": NMConfig(1, 4),
    "R-TOSS 3EP": RTossConfig(entries=3),
    "R-TOSS 2EP": RTossConfig(entries=2),
    "magnitude global 90%": MagnitudeConfig(0.9, scope="global"),  # Deep Compression's row
}
FINETUNED = ("R-TOSS 2EP", "magnitude global 90%")
FAST = {"amp": True, "channels_last": True}  # bf16 autocast + NHWC where the CPU has bf16


def shipped(model: str) -> Path | None:
    """The package's shipped signs-trained ``model`` (see :mod:`edgeslim.models.shipped`)."""
    found = sorted(WEIGHTS_DIR.glob(f"{model}-signs-*"))
    return found[0] if found and is_saved_model(found[0]) else None


def subset(n: int, augment: bool):
    ds = load_dataset(DATA, "train", augment=augment)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(12345))
    return Subset(ds, order[:n].tolist()) if n else ds


def conv_zeros(model: nn.Module) -> float:
    ws = [m.weight.detach() for m in model.modules() if isinstance(m, nn.Conv2d)]
    return sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)


def measure(name: str, model: nn.Module, lm, test, tmp: Path, seconds: float = 0.0) -> dict:
    plain = squashed(model).eval()
    onnx = export_onnx(plain, lm.input, tmp / "m.onnx")
    a8 = save_archive(plain, tmp / "m8.esz", values="int8")
    af = save_archive(plain, tmp / "mf.esz", values="float")
    ak = save_archive(plain, tmp / "mk.esz", values="kmeans", bits=4)
    row = {
        "model": name,
        "conv_zeros": round(conv_zeros(plain), 4),
        "top1": round(primary_value(evaluate_model(plain, test)), 4),
        "onnx_bytes": onnx.size_bytes,
        "archive_int8_bytes": a8.size_bytes,
        "archive_float_bytes": af.size_bytes,
        "archive_kmeans4_bytes": ak.size_bytes,
        "onnx_over_archive_int8": round(onnx.size_bytes / a8.size_bytes, 2),
        "onnx_over_archive_float": round(onnx.size_bytes / af.size_bytes, 2),
        "onnx_over_archive_kmeans4": round(onnx.size_bytes / ak.size_bytes, 2),
        "train_seconds": round(seconds, 1),
    }
    print(json.dumps(row), flush=True)
    return row


def markdown(res: dict) -> str:
    lines = [
        f"# Sparsity on signs ({res['model']})",
        "",
        f"CPU: {res['cpu']}; torch {res['torch']}; {res['threads']} threads.",
        (
            f"Dense model: the shipped pre-trained `{res['pretrained']}`"
            if res["pretrained"]
            else f"Dense model: {res['epochs']} epochs on {res['train_size']} training images "
            "(a short run: under-trained, accuracy costs are not meaningful)"
        )
        + f"; fine-tuning: {res['finetune_epochs']} epoch(s) with the masks on "
        f"{res['train_size']} training images. Top-1 on the first "
        f"{res['test_size']} test images. Whole run: {res['seconds']:.0f} s.",
        "",
        "The ONNX file is dense (ONNX Runtime stores and runs zeros like any weight); the "
        "archive is `edgeslim.sparsity.archive` (bitmask + nonzeros + zstd). No speed-up is "
        "claimed: ONNX Runtime has no sparse kernels on CPU.",
        "",
        "The shipped weights are fp16-rounded (their low mantissa bits are zero), so the "
        "float archives of models that were not fine-tuned compress better than trained "
        "float32 weights would; the INT8 archives are unaffected.",
        "",
        "| model | conv zeros | top-1 | ONNX KB | archive float KB | archive int8 KB "
        "| archive 4-bit k-means KB | ONNX / int8 archive | ONNX / k-means archive |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['model']} | {100 * r['conv_zeros']:.1f}% | {100 * r['top1']:.2f} "
            f"| {r['onnx_bytes'] / 1024:.1f} | {r['archive_float_bytes'] / 1024:.1f} "
            f"| {r['archive_int8_bytes'] / 1024:.1f} | {r['archive_kmeans4_bytes'] / 1024:.1f} "
            f"| {r['onnx_over_archive_int8']:.2f}x | {r['onnx_over_archive_kmeans4']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18_small_half")
    p.add_argument(
        "--pretrained",
        default=None,
        help="a saved model trained on signs (default: the shipped one of --model, if any; "
        "else --model is trained for --epochs on --train-size images)",
    )
    p.add_argument("--train-size", type=int, default=3000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--test-size", type=int, default=500, help="first N test images")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS / "sparsity.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pre = Path(args.pretrained) if args.pretrained else shipped(args.model)
    if pre is not None:
        lm = load_saved(pre)  # a converged model: the accuracy costs mean something
    else:
        lm = load_model(args.model, num_classes=dataset_info(DATA).num_classes)
    test_ds = load_dataset(DATA, "test")
    test = make_loader(Subset(test_ds, range(min(args.test_size, len(test_ds)))), 250, False)
    train = subset(args.train_size, True)
    t0 = time.perf_counter()
    if pre is None:
        dense_cfg = TrainConfig(epochs=args.epochs, lr=0.1, batch_size=64, **FAST)
        Trainer(lm.model, dense_cfg, progress=False).fit(train, None)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows.append(measure("dense", lm.model, lm, test, tmp, time.perf_counter() - t0))
        for name, cfg in KINDS.items():
            model, _ = apply_(copy.deepcopy(lm.model), cfg)
            rows.append(measure(f"{name} (one-shot)", model, lm, test, tmp))
            if name in FINETUNED and args.finetune_epochs:
                t1 = time.perf_counter()
                tcfg = TrainConfig(epochs=args.finetune_epochs, lr=0.01, batch_size=64, **FAST)
                Trainer(model, tcfg, progress=False).fit(train, None)
                rows.append(
                    measure(f"{name} + fine-tune", model, lm, test, tmp, time.perf_counter() - t1)
                )
    res = {
        "model": lm.name if pre is not None else args.model,
        "pretrained": str(pre.name) if pre is not None else None,
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "threads": args.threads,
        "train_size": args.train_size,
        "epochs": args.epochs,
        "finetune_epochs": args.finetune_epochs,
        "test_size": args.test_size,
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
    }
    out = Path(args.out)
    write_text_atomic(out, json.dumps(res, indent=2) + "\n")
    write_text_atomic(out.with_suffix(".md"), markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
