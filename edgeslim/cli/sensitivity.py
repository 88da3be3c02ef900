"""``edgeslim sensitivity``: which layers lose accuracy when quantized, one at a time."""

from __future__ import annotations

import argparse

from edgeslim.cli.common import add_model_args, model_from_args, write_json

HELP = "per-layer quantization sensitivity (top-1 drop and SQNR): table and plot"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--data", required=True, help="dataset: calibration (train) and accuracy (test)")
    p.add_argument("--w-bits", type=int, default=8)
    p.add_argument("--a-bits", type=int, default=8)
    p.add_argument("--calib-method", default="minmax")
    p.add_argument("--calib-batches", type=int, default=8)
    p.add_argument("--eval-samples", type=int, default=1000, help="test samples per layer")
    p.add_argument("-o", "--output", required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from torch.utils.data import Subset

    from edgeslim.core.atomic import write_text_atomic
    from edgeslim.data import load_dataset, make_loader
    from edgeslim.quant.config import PTQConfig, activation_spec, weight_spec
    from edgeslim.quant.ptq import quantize_ptq
    from edgeslim.quant.sensitivity import layer_sensitivity, plot, to_json, to_markdown
    from edgeslim.workflows.quantize import calibration_loader

    lm = model_from_args(args)
    cfg = PTQConfig(
        weight=weight_spec(args.w_bits),
        activation=activation_spec(args.a_bits, args.calib_method),
        calib_batches=args.calib_batches,
    )
    qm = quantize_ptq(lm.model, calibration_loader(args.data), cfg)
    test = load_dataset(args.data, "test")
    test = Subset(test, range(min(len(test), args.eval_samples)))
    loader = make_loader(test, 256, shuffle=False)
    rows = layer_sensitivity(qm, next(iter(loader))[0], loader)
    out = Path(args.output)
    write_text_atomic(out / "sensitivity.md", to_markdown(rows))
    write_json(
        out / "sensitivity.json", {"model": lm.name, "data": args.data, "layers": to_json(rows)}
    )
    plot(
        rows,
        out / "sensitivity.png",
        f"{lm.name}: W{args.w_bits}A{args.a_bits} one layer at a time",
    )
    print(to_markdown(rows[:10]))
    print(f"wrote {out}/sensitivity.md, sensitivity.json, sensitivity.png")
    return 0
