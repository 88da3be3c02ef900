"""QAT methods side by side: STE, LSQ, PACT, DoReFa and DSQ at W4A4 on ResNet-20 / signs.

A *short* comparison sized for a shared 2-core box (issue 13's protocol is a
fully trained FP32 model, 3 seeds and longer QAT): the FP32 ResNet-20 is trained
for ``--pretrain-epochs`` on the first ``--train-samples`` training images
(cached under ``--cache``), then each method fine-tunes it for ``--epochs`` on
the same images (SGD, cosine, one seed), the stem and the classifier at W8A8 as
in the LSQ paper.
Accuracy is the simulated model's top-1 on the first ``--test-samples`` test images; W4A4 is
simulated only (no ONNX Runtime CPU kernel for 4-bit activations).

Run (2 cores; the FP32 model and each method alone stay under about 3 minutes,
results merge):

    nice -n 10 python benchmarks/qat.py --methods ste     # trains and caches FP32 first
    for m in lsq pact dorefa dsq; do nice -n 10 python benchmarks/qat.py --methods $m; done

Writes ``benchmarks/results/qat.json`` and ``qat.md`` with the CPU model.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import Subset

from edgeslim.bench.accuracy import evaluate_model, primary_value
from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.cpu import cpu_model
from edgeslim.core.methods import apply
from edgeslim.data import dataset_info, load_dataset, make_loader
from edgeslim.models.saved import is_saved_model, load_saved, save_model
from edgeslim.models.spec import LoadedModel, load_model
from edgeslim.quant.qat import CONFIGS, freeze_
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer
from edgeslim.workflows.quantize import calibration_loader

RESULTS = Path(__file__).parent / "results"
KEEP_8BIT = ("conv1", "fc")  # first and last layer at W8A8 (Esser et al. 2020, Section 3)


def fp32_model(args, train) -> LoadedModel:
    """ResNet-20 trained on ``train`` (cached: every method starts from the same weights)."""
    path = Path(args.cache) / f"resnet20-signs-{args.train_samples}-{args.pretrain_epochs}ep"
    if is_saved_model(path):
        return load_saved(path)
    lm = load_model("resnet20", num_classes=dataset_info("signs").num_classes)
    torch.manual_seed(args.seed)
    cfg = TrainConfig(epochs=args.pretrain_epochs, lr=0.1, batch_size=128, seed=args.seed)
    Trainer(lm.model, cfg, progress=True).fit(train)
    save_model(lm, path)
    return load_saved(path)


def run_method(method: str, base, args, train, test) -> dict:
    torch.manual_seed(args.seed)
    cfg = CONFIGS[method](w_bits=args.bits, a_bits=args.bits, calib_batches=4)
    overrides = {name: replace(cfg, w_bits=8, a_bits=8) for name in KEEP_8BIT}
    t0 = time.perf_counter()
    model, _ = apply(base.model, cfg, overrides=overrides, calib=calibration_loader("signs"))
    freeze_(model, cfg, 0)
    Trainer(
        model,
        TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=128, seed=args.seed),
        progress=False,
        on_epoch=lambda h: freeze_(model, cfg, len(h)),
    ).fit(train)
    after = primary_value(evaluate_model(model, test))
    return {
        "method": method,
        "bits": f"W{args.bits}A{args.bits}",
        "top1": round(after, 4),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="ste,lsq,pact,dorefa,dsq")
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--pretrain-epochs", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-samples", type=int, default=2048)
    p.add_argument("--test-samples", type=int, default=500)
    p.add_argument("--cache", default="/tmp/edgeslim-qat-bench")
    p.add_argument("--results", default=str(RESULTS), help="where qat.json / qat.md go")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    train = Subset(load_dataset("signs", "train", augment=True), range(args.train_samples))
    base = fp32_model(args, train)
    test_set = Subset(load_dataset("signs", "test"), range(args.test_samples))
    test = make_loader(test_set, 250, shuffle=False)
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    out = results_dir / "qat.json"
    results = json.loads(out.read_text()) if out.is_file() else {}
    results["fp32_top1"] = round(primary_value(evaluate_model(base.model, test)), 4)
    results["protocol"] = (
        f"ResNet-20/signs, {args.train_samples} training images: FP32 {args.pretrain_epochs} "
        f"epochs, then QAT {args.epochs} epoch(s), SGD lr {args.lr} cosine, seed {args.seed}, "
        f"conv1 and fc at W8A8; simulated top-1 on the first {args.test_samples} test images"
    )
    results["cpu"] = cpu_model()
    runs = results.setdefault("runs", {})
    for method in args.methods.split(","):
        r = run_method(method, base, args, train, test)
        runs[f"{method}_{r['bits']}"] = r
        print(json.dumps(r))
        write_text_atomic(out, json.dumps(results, indent=2) + "\n")
    lines = [
        "# QAT at low bits (short run)",
        "",
        f"{results['protocol']}. CPU: {results['cpu']}. FP32 top-1 {results['fp32_top1']:.4f}.",
        "Activations below 8 bits are simulated only: ONNX Runtime on CPU has no kernel for them.",
        "",
        "| method | bits | top-1 after QAT | seconds (calibrate + train + evaluate) |",
        "|---|---|---|---|",
    ]
    for r in runs.values():
        lines.append(f"| {r['method']} | {r['bits']} | {r['top1']:.4f} | {r['seconds']} |")
    write_text_atomic(results_dir / "qat.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
