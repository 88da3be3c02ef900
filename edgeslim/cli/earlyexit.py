"""``edgeslim earlyexit``: FastBERT branches, segmented ONNX export, accuracy vs latency.

Trains (optionally fine-tunes first) a branch classifier on every layer of a BERT
by self-distillation, exports one ONNX graph per exit point (run in sequence,
stopping at the first confident branch) and times every test sample at batch 1
for several exit thresholds against the whole model as one ONNX graph. Writes
``OUT/earlyexit/`` (the deployable segments + manifest), ``OUT/full.onnx``,
``OUT/report.json``, ``OUT/report.md`` and ``OUT/accuracy_latency.png``.
"""

from __future__ import annotations

import argparse

from edgeslim.cli.common import _arg_type, add_train_args, refuse_overwrite, train_config

HELP = "FastBERT early exit: self-distilled branches, one ONNX graph per exit, measured"


def parse_thresholds(text: str) -> tuple[float, ...]:
    from edgeslim.core.errors import EdgeslimError

    try:
        ts = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise EdgeslimError(f"bad thresholds {text!r}: expected numbers like 0,0.1,0.3") from None
    if not ts or any(not 0 <= t <= 1 for t in ts):
        raise EdgeslimError(f"bad thresholds {text!r}: each must be in [0, 1]")
    return ts


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a BERT: hf:config.json or a saved (trained) model dir")
    p.add_argument("--data", required=True, help="dataset spec: synthtext, textlogic, ...")
    p.add_argument("--epochs", type=int, required=True, help="branch self-distillation epochs")
    p.add_argument(
        "--finetune-epochs",
        type=int,
        default=0,
        help="fine-tune the backbone + classifier on the labels first (0: the model is trained)",
    )
    p.add_argument("--temperature", type=float, default=1.0, help="of the branch KL (paper: 1)")
    p.add_argument(
        "--branch",
        choices=("cls", "attn"),
        default="attn",
        help="cls: a head on [CLS]; attn: the paper's 2-head self-attention branch",
    )
    p.add_argument(
        "--thresholds",
        type=_arg_type(parse_thresholds),
        default=(0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8),
        help="normalised-entropy exit thresholds to measure",
    )
    p.add_argument("--threshold", type=float, default=0.3, help="default written to the manifest")
    p.add_argument("--repeats", type=int, default=3, help="timed passes over the test set")
    p.add_argument("--limit", type=int, default=None, help="time only the first N test samples")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    p.add_argument("-o", "--output", required=True, help="output directory")
    add_train_args(p)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from edgeslim.bench.early_exit import best_within
    from edgeslim.data import dataset_info
    from edgeslim.models.saved import save_model
    from edgeslim.models.spec import load_model
    from edgeslim.workflows.fastbert import measure_fastbert, train_fastbert, write_fastbert_report
    from edgeslim.workflows.students import fit_input

    refuse_overwrite(args.model, args.output)
    out = Path(args.output)
    lm = load_model(args.model, num_classes=dataset_info(args.data).num_classes)
    lm = fit_input(lm, args.data)  # the data's token length
    branches = train_config(args)
    finetune = replace(branches, epochs=args.finetune_epochs) if args.finetune_epochs else None
    res = train_fastbert(
        lm, args.data, branches, finetune=finetune, temperature=args.temperature,
        branch=args.branch,
    )  # fmt: skip
    if finetune is not None:
        save_model(lm, out / "model")
    report = measure_fastbert(
        res, args.data, out, args.thresholds, threshold=args.threshold,
        repeats=args.repeats, threads=args.threads, limit=args.limit,
    )  # fmt: skip
    report = {"command": "earlyexit", "data": args.data, "history": res.history, **report}
    paths = write_fastbert_report(report, out, f"FastBERT early exit on {args.data}")
    best = best_within(report["sweep"], 1.0)
    if best is not None:
        print(
            f"threshold {best['threshold']:g}: {best['speedup']:.2f}x lower mean latency per "
            f"sample, {best['accuracy_drop_points']:+.2f} points (fastest within 1 point)"
        )
    print(f"wrote {out}/earlyexit/ (segments + manifest), " + ", ".join(map(str, paths)))
    return 0
