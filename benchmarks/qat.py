"""QAT methods side by side on a zoo model / signs: edgeslim's methods, PTQ, and Brevitas 0.13.4.

Issue 13's "accuracy at low bits", "against a peer" and "depthwise" checks, sized
for a shared 2-core box. The FP32 ``--model`` (ResNet-20 unless told) trains for
``--pretrain-epochs`` on the first ``--train-samples`` training images (SGD lr
0.1 cosine, batch 128, seed 0, cached under ``--cache`` by model name, so every
run starts from the same weights); then each run fine-tunes a quantized copy for
``--epochs`` on the first ``--qat-samples`` of those images (SGD, lr ``--lr``,
cosine, batch 128), with the first conv (the stem) and the last Linear (the
classifier) at W8A8 as in the LSQ paper (ResNet-20: ``conv1``, ``fc``;
MobileNetV2: ``features.0.0``, ``classifier.1``). Every other layer has
``bits``-bit weights and ``--a-bits``-bit activations (``bits`` unless told:
``--bits 4 --a-bits 8`` is W4A8).

Methods (``--methods``):

* the QAT registry's names (``ste, lsq, lsq_plus, pact, dorefa, dsq``...): 4
  calibration batches, BatchNorm folded in simulation;
* ``NAME+pc`` / ``NAME+nofold`` / ``lsq+mse``: the method with per-channel weight
  scales (LSQ, LSQ+), with BatchNorm kept as a layer instead of folded in simulation,
  or (LSQ) with least-squared-error initial step sizes;
* ``ptq``: edgeslim's post-training quantization (``PTQConfig``: per-channel
  min-max weights, per-tensor asymmetric activations, 16 calibration batches), no
  training; the stem and the classifier keep 8-bit weights;
* ``brevitas``: the same model, data, starting weights, calibration batches,
  trainer and schedule, quantized by Brevitas 0.13.4 (``benchmarks/qat_brevitas.py``;
  ``pip install brevitas==0.13.4``; a peer, never a package dependency).

Each (method, bits, seed) is one run, keyed ``method_WwAa_sN``; results merge into
``--results/qat.json`` (``qat_MODEL.json`` for a model other than ResNet-20) run by
run and a run already recorded with the same protocol is skipped (``--force``
reruns it), so the sweep resumes where it stopped. ``qat.md`` reports the mean and
standard deviation over seeds (the seed drives the QAT run: data order,
augmentation, calibration batches; the FP32 model is the same).
Accuracy is the simulated model's top-1 on the first ``--test-samples`` test images.
Activations below 8 bits are simulated only (no ONNX Runtime CPU kernel for them).

Run (1 thread each, ``nice``; the first call trains and caches the FP32 model):

    nice -n 10 python benchmarks/qat.py --methods lsq --bits 4 --seeds 0,1,2
    nice -n 10 python benchmarks/qat.py --methods lsq,ptq --bits 8
    nice -n 10 python benchmarks/qat.py --methods ste,lsq_plus,pact,dorefa,dsq --bits 4,3
    nice -n 10 python benchmarks/qat.py --methods brevitas --bits 4,3
    nice -n 10 python benchmarks/qat.py --methods lsq,brevitas --bits 4 --epochs 3  # lsq@3ep
    nice -n 10 python benchmarks/qat.py --methods lsq --bits 8 --lr 0.001  # lsq@lr0.001
    nice -n 10 python benchmarks/qat.py --model mobilenet_v2_cifar --methods lsq+pc,ptq \\
        --bits 4 --a-bits 8  # -> qat_mobilenet_v2_cifar.json, keys lsq+pc_W4A8_s0...

The exact commands of the recorded runs are listed in ``qat.md``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import re
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Subset

from edgeslim.bench.accuracy import evaluate_model, primary_value
from edgeslim.bench.machine import machine_info
from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import apply
from edgeslim.data import dataset_info, load_dataset, make_loader
from edgeslim.models.saved import is_saved_model, load_saved, save_model
from edgeslim.models.spec import LoadedModel, load_model
from edgeslim.quant.config import PTQConfig, activation_spec, weight_spec
from edgeslim.quant.qat import CONFIGS, freeze_
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer
from edgeslim.workflows.quantize import calibration_loader

RESULTS = Path(__file__).parent / "results"
DEFAULT_MODEL = "resnet20"  # its results keep the historical name qat.json
DEFAULT_EPOCHS = 1
DEFAULT_LR = 0.01
CALIB_BATCHES = 4  # QAT quantizer initialisation (edgeslim and Brevitas alike)
PEERS = ("ptq", "brevitas")
# ``method+option``: a config field changed from the method's default (``lsq+pc``)
VARIANTS = {
    "pc": {"per_channel_weights": True},  # one step size per output channel
    "nofold": {"fold_bn": False},  # BatchNorm stays a layer, as in the LSQ paper and Brevitas
    "mse": {"init": "mse"},  # LSQ: least-squared-error initial steps instead of the paper's rule
}


def keep_8bit(model: nn.Module) -> tuple[str, str]:
    """The first conv and the last Linear in module order: kept at W8A8 (Esser et al. 2020, §3).

    Falls back to the last conv when the classifier is a 1x1 conv (no Linear at all).
    """
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    heads = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)] or convs
    if not convs or not heads:
        raise EdgeslimError("the model has no Conv2d / Linear layer to keep at 8 bits")
    return convs[0], heads[-1]


def exact(name: str) -> str:
    """An override pattern that selects the layer ``name`` and nothing else."""
    return re.escape(name)


def fp32_model(args, train) -> LoadedModel:
    """``--model`` trained on ``train`` (cached: every run starts from the same weights)."""
    bf16 = "-bf16" if args.pretrain_bf16 else ""
    path = (
        Path(args.cache) / f"{args.model}-signs-{args.train_samples}-{args.pretrain_epochs}ep{bf16}"
    )
    if is_saved_model(path):
        return load_saved(path)
    lm = load_model(args.model, num_classes=dataset_info("signs").num_classes)
    torch.manual_seed(0)
    cfg = TrainConfig(
        epochs=args.pretrain_epochs,
        lr=0.1,
        batch_size=128,
        seed=0,
        amp=args.pretrain_bf16,
        channels_last=args.pretrain_bf16,
    )
    Trainer(lm.model, cfg, progress=True, ckpt_dir=f"{path}.ckpt").fit(train)
    save_model(lm, path)
    return load_saved(path)


def calib(seed: int):
    """The calibration batches (the training split, shuffled by ``seed``)."""
    torch.manual_seed(seed)
    return calibration_loader("signs")


def parse_method(spec: str) -> tuple[str, dict]:
    """``lsq+pc+nofold`` -> ``("lsq", {"per_channel_weights": True, "fold_bn": False})``."""
    name, *opts = spec.split("+")
    if name not in CONFIGS and name not in PEERS:
        raise EdgeslimError(f"unknown method {name!r}; choose from {sorted(CONFIGS) + list(PEERS)}")
    if opts and name not in CONFIGS:
        raise EdgeslimError(f"{spec!r}: options apply to edgeslim's QAT methods only")
    for o in opts:
        if o not in VARIANTS:
            raise EdgeslimError(f"{spec!r}: unknown option {o!r}; choose from {sorted(VARIANTS)}")
    fields = {k: v for o in opts for k, v in VARIANTS[o].items()}
    if name == "lsq":  # plain ``lsq`` is the paper's rule in every recorded run; +mse the other
        fields = {"init": "paper", **fields}
    return name, fields


def quantize_edgeslim(method: str, base, bits: int, a_bits: int, seed: int):
    name, fields = parse_method(method)
    cfg = CONFIGS[name](w_bits=bits, a_bits=a_bits, calib_batches=CALIB_BATCHES, **fields)
    eight = replace(cfg, w_bits=8, a_bits=8)
    overrides = {exact(n): eight for n in keep_8bit(base.model)}
    model, _ = apply(base.model, cfg, overrides=overrides, calib=calib(seed))
    freeze_(model, cfg, 0)
    return model, lambda h: freeze_(model, cfg, len(h))


def quantize_ptq(base, bits: int, a_bits: int, seed: int):
    cfg = PTQConfig(weight=weight_spec(bits), activation=activation_spec(a_bits))
    eight = PTQConfig(weight=weight_spec(8), activation=activation_spec(a_bits))
    overrides = {exact(n): eight for n in keep_8bit(base.model)} if bits != 8 else None
    model, _ = apply(base.model, cfg, overrides=overrides, calib=calib(seed))
    return model


def run_one(method: str, bits: int, a_bits: int, seed: int, base, args, train, test) -> dict:
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    load = os.getloadavg()[0]
    on_epoch, history = None, []
    if method == "ptq":
        model = quantize_ptq(base, bits, a_bits, seed)
    elif method == "brevitas":
        from benchmarks.qat_brevitas import brevitas_resnet

        model = brevitas_resnet(base.model, bits, calib(seed), CALIB_BATCHES)
    else:
        model, on_epoch = quantize_edgeslim(method, base, bits, a_bits, seed)
    error = None
    if method != "ptq":
        cfg = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=128, seed=seed)
        try:
            history = Trainer(model, cfg, progress=False, on_epoch=on_epoch).fit(train)
        except EdgeslimError as exc:  # the trainer stops on a NaN loss
            error = str(exc)
    top1 = float("nan") if error else primary_value(evaluate_model(model, test))
    return {
        "method": method,
        "label": label(method, args),
        "bits": bits,
        **({"a_bits": a_bits} if a_bits != bits else {}),  # W=A runs keep the old record
        "seed": seed,
        "top1": round(top1, 4) if math.isfinite(top1) else None,
        "train_top1_last_epoch": round(history[-1]["train_top1"], 4) if history else None,
        "error": error,
        "seconds": round(time.perf_counter() - t0, 1),
        "load_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
        "protocol": protocol(args),
    }


def label(method: str, args) -> str:
    """The name in the tables: ``lsq``; ``lsq@3ep``, ``lsq@lr0.001`` off the default protocol."""
    tags = [f"{args.epochs}ep"] if args.epochs != DEFAULT_EPOCHS else []
    tags += [f"lr{args.lr:g}"] if args.lr != DEFAULT_LR else []
    return "@".join([method, *tags])


def protocol(args) -> str:
    return (
        f"FP32 {args.pretrain_epochs} epochs on {args.train_samples} images; "
        f"QAT {args.epochs} epoch(s) on {args.qat_samples} images, SGD lr {args.lr} cosine, "
        f"batch 128; top-1 on {args.test_samples} test images"
    )


def load_results(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def results_path(args) -> Path:
    """``--results/qat.json`` for ResNet-20, ``--results/qat_MODEL.json`` for another model."""
    stem = "qat" if args.model == DEFAULT_MODEL else f"qat_{args.model}"
    return Path(args.results) / f"{stem}.json"


def merge_save(path: Path, header: dict, runs: dict) -> dict:
    """Merge ``header`` and ``runs`` into what is on disk now (runs of other processes stay)."""
    from benchmarks.qat_report import markdown

    with open(path.parent / f".{path.stem}.lock", "w") as lock:  # two sweeps may share it
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = load_results(path)
        commands = merged.get("commands", [])
        merged.update({k: v for k, v in header.items() if k != "commands"})
        merged["commands"] = commands + [c for c in header.get("commands", []) if c not in commands]
        merged["runs"] = {**merged.get("runs", {}), **runs}
        write_text_atomic(path, json.dumps(merged, indent=2) + "\n")
        write_text_atomic(path.with_suffix(".md"), markdown(merged))
    return merged


def parse_ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise EdgeslimError(f"expected comma-separated integers, got {text!r}") from exc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help="zoo name, e.g. mobilenet_v2_cifar")
    p.add_argument("--methods", default="ste,lsq,lsq_plus,pact,dorefa,dsq")
    p.add_argument("--bits", default="4", help="comma-separated weight bit widths, e.g. 4,3,2,8")
    p.add_argument("--a-bits", type=int, help="activation bits (default: the weight bits)")
    p.add_argument("--seeds", default="0", help="comma-separated QAT seeds, e.g. 0,1,2")
    p.add_argument("--pretrain-epochs", type=int, default=8)
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    p.add_argument("--train-samples", type=int, default=10000, help="FP32 training images")
    p.add_argument("--qat-samples", type=int, default=4096, help="QAT training images")
    p.add_argument("--test-samples", type=int, default=2000)
    p.add_argument("--lr", type=float, default=DEFAULT_LR)
    p.add_argument(
        "--pretrain-bf16",
        action="store_true",
        help="FP32 model trained under bf16 autocast, channels-last (2x faster on AMX)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default="/tmp/edgeslim-qat-bench")
    p.add_argument("--results", default=str(RESULTS), help="folder of qat[_MODEL].json / .md")
    p.add_argument("--force", action="store_true", help="rerun runs already recorded")
    args = p.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        parse_method(m)
    if "brevitas" in methods and args.model != DEFAULT_MODEL:
        raise EdgeslimError("the Brevitas peer is written for ResNet-20 only")
    bits_list, seeds = parse_ints(args.bits), parse_ints(args.seeds)
    torch.set_num_threads(args.threads)

    train_all = load_dataset("signs", "train", augment=True)
    base = fp32_model(args, Subset(train_all, range(args.train_samples)))
    train = Subset(train_all, range(args.qat_samples))
    test_set = Subset(load_dataset("signs", "test"), range(args.test_samples))
    test = make_loader(test_set, 250, shuffle=False)
    path = results_path(args)
    path.parent.mkdir(parents=True, exist_ok=True)
    recorded = load_results(path)
    fp32 = {
        "top1": round(primary_value(evaluate_model(base.model, test)), 4),
        "pretrain_epochs": args.pretrain_epochs,
        "train_samples": args.train_samples,
        "test_samples": args.test_samples,
        **({"pretrain_bf16": True} if args.pretrain_bf16 else {}),
    }
    if recorded.get("fp32", fp32) != fp32 or recorded.get("model", args.model) != args.model:
        raise EdgeslimError(f"{path} holds another FP32 model; use --results")
    header = {
        **({"model": args.model} if args.model != DEFAULT_MODEL else {}),
        "keep_8bit": list(keep_8bit(base.model)),
        "fp32": fp32,
        "machine": machine_info(threads=args.threads),
        "commands": ["nice -n 10 python " + " ".join(shlex.quote(a) for a in sys.argv)],
    }
    if "brevitas" in methods:
        from benchmarks.qat_brevitas import brevitas_version

        header["brevitas"] = brevitas_version()
    merge_save(path, header, {})
    for bits in bits_list:
        a_bits = bits if args.a_bits is None else args.a_bits
        for method in methods:
            for seed in seeds:
                key = f"{label(method, args)}_W{bits}A{a_bits}_s{seed}"
                old = load_results(path).get("runs", {}).get(key, {})
                if not args.force and old.get("protocol") == protocol(args):
                    print(f"{key}: recorded, skipped")
                    continue
                run = run_one(method, bits, a_bits, seed, base, args, train, test)
                print(key, json.dumps(run), flush=True)
                merge_save(path, header, {key: run})


if __name__ == "__main__":
    main()
