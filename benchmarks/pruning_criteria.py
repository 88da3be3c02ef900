"""Which channels does each criterion keep? ResNet-56 on ``signs`` pruned to half its MACs,
BN statistics re-estimated (adaptive BN, no gradient step), top-1 on the validation split.

Fine-tuning hides most of a criterion's choice (every row of pruning_accuracy ends within
seed noise of the others); the accuracy right after pruning with recalibrated BN
statistics is the cheap, deterministic comparison (EagleEye, Li et al. ECCV 2020, use it
to rank candidate pruned models). For each weight criterion both aggregation rules
(``Criterion.reduce``: "sum" = group norm, "mean" = every coupled layer weighs the same)
and both scopes (``spaces``: producers only, or also consumers' input columns) are
measured; the registered setting of each criterion is marked. Torch-Pruning 1.6.1's L1
(if installed) and ``edgeslim prune --search`` (``--search``) are measured alongside.

    python benchmarks/pruning_criteria.py --base-epochs 15 --search

Writes benchmarks/results/pruning_criteria.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from edgeslim.bench.accuracy import evaluate_model
from edgeslim.bench.macs import count_macs, count_params
from edgeslim.data import load_dataset, make_loader
from edgeslim.prune import CRITERIA, PruneConfig, prune
from edgeslim.prune.recalibrate import recalibrate_bn
from edgeslim.train.config import TrainConfig
from edgeslim.workflows.train import pretrained

sys.path.insert(0, str(Path(__file__).parent))
from pruning_accuracy import FAST, searched, tp_prune_to_macs  # noqa: E402

RESULTS = Path(__file__).parent / "results"
WEIGHT_CRITERIA = ("l1", "l2", "fpgm", "taylor", "obd")


def recalibrated_top1(model: torch.nn.Module, val) -> float:
    m = copy.deepcopy(model)
    train = make_loader(load_dataset("signs", "train"), 64, shuffle=True, seed=0)
    recalibrate_bn(m, train, max_batches=30)
    return evaluate_model(m, val)["top1"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-epochs", type=int, default=15)
    ap.add_argument("--search", action="store_true", help="also edgeslim prune --search")
    ap.add_argument("--out", default="pruning_criteria.json", help="file under results/")
    args = ap.parse_args()
    base = pretrained("resnet56", "signs", TrainConfig(epochs=args.base_epochs, **FAST))
    model = base.model.eval()
    x = torch.randn(1, 3, 32, 32)
    val = make_loader(load_dataset("signs", "val"), 256, shuffle=False)
    calib = make_loader(load_dataset("signs", "train"), 64, shuffle=True)
    target = count_macs(model, x)[0] // 2
    rows = [{"variant": "dense", "top1_recalibrated": evaluate_model(model, val)["top1"]}]

    def record(name: str, pm: torch.nn.Module, seconds: float, **extra) -> None:
        rows.append(
            {
                "variant": name,
                "params": count_params(pm),
                "macs": count_macs(pm, x)[0],
                "top1_raw": evaluate_model(pm, val)["top1"],
                "top1_recalibrated": recalibrated_top1(pm, val),
                "prune_seconds": seconds,
                **extra,
            }
        )
        print(rows[-1], flush=True)

    for name in list(CRITERIA.names()):
        crit = CRITERIA.get(name)
        settings = [(crit.spaces, crit.reduce)]
        if name in WEIGHT_CRITERIA:
            settings += [
                (s, r) for s in ("out", "all") for r in ("sum", "mean") if (s, r) != settings[0]
            ]
        for spaces, reduce in settings:
            variant = f"{name}_{spaces}_{reduce}"
            CRITERIA.register(variant, dataclasses.replace(crit, spaces=spaces, reduce=reduce))
            t0 = time.perf_counter()
            pm = prune(model, x, PruneConfig(target_macs=target, criterion=variant), data=calib)
            record(
                f"{name} (spaces={spaces}, reduce={reduce})",
                pm.model,
                time.perf_counter() - t0,
                registered=(spaces, reduce) == (crit.spaces, crit.reduce),
            )
    first = next(r["macs"] for r in rows[1:])
    try:
        t0 = time.perf_counter()
        record(
            "Torch-Pruning 1.6.1 L1", tp_prune_to_macs(model, x, first), time.perf_counter() - t0
        )
    except ImportError:
        print("torch-pruning not installed: skipped", flush=True)
    if args.search:
        t0 = time.perf_counter()
        record("edgeslim prune --search (l1)", searched(model, first), time.perf_counter() - t0)
    out = {
        "setting": f"ResNet-56 trained {args.base_epochs} epochs on signs, pruned to <= half "
        "its MACs with a uniform ratio, BN statistics re-estimated on 30 training batches of 64, "
        "top-1 on the 2,000-image validation split; no fine-tuning",
        "command": "python benchmarks/pruning_criteria.py " + " ".join(sys.argv[1:]),
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(out["setting"])
    print("| variant | MMACs | top-1 after pruning | after BN recalibration |")
    print("|---|---:|---:|---:|")
    for r in rows[1:]:
        mark = " (registered)" if r.get("registered") else ""
        print(
            f"| {r['variant']}{mark} | {r['macs'] / 1e6:.1f} | {100 * r['top1_raw']:.2f} | "
            f"{100 * r['top1_recalibrated']:.2f} |"
        )


if __name__ == "__main__":
    main()
