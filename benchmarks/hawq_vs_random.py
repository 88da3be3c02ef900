"""HAWQ-V3 bit choice against every random 4/8 split of the same size (issue 13, item 3).

A 7-layer MLP is trained on a synthetic 4-class task (noisy labels, so its loss is
not zero); its five 32x32 hidden layers get 4 or 8 weight bits at an average of
5.6 bits (two at 8, three at 4). :func:`edgeslim.quant.mixed.hawq_bits` picks which;
the baseline is every one of the 10 equal-size splits. Weights are quantized with
the per-channel symmetric quantizer (no activation quantization, no fine-tuning);
the score is the training cross-entropy. Three seeds. Writes
``benchmarks/results/hawq_vs_random.json`` and ``.md`` with the CPU model. Run:

    python benchmarks/hawq_vs_random.py [--seeds 3] [--probes 64]

A few seconds on one core. A stand-in for the issue's check (ResNet-20 on signs at
an average of 6 bits), which needs a trained zoo model and QAT of the choice.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from pathlib import Path

import torch
from torch import nn

from edgeslim.bench.machine import machine_info, machine_line
from edgeslim.core.atomic import atomic_path
from edgeslim.quant.mixed import HawqConfig, hawq_bits, quantize_weight

OUT = Path(__file__).parent / "results"
HIDDEN = [str(i) for i in range(2, 12, 2)]  # the five 32x32 hidden Linear layers


def trained(seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    hidden = [m for _ in range(5) for m in (nn.ReLU(), nn.Linear(32, 32))]
    net = nn.Sequential(nn.Linear(16, 32), *hidden, nn.ReLU(), nn.Linear(32, 4))
    x = torch.randn(1024, 16)
    y = (x[:, :4] + 0.5 * torch.randn(1024, 4)).argmax(1)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net, x, y


def loss_with(net: nn.Module, bits: dict[str, int], x: torch.Tensor, y: torch.Tensor) -> float:
    """Cross-entropy with ``bits`` applied to a copy of the weights; ``net`` is unchanged."""
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    mods = dict(net.named_modules())
    try:
        with torch.no_grad():
            for name, b in bits.items():
                mods[name].weight.copy_(quantize_weight(mods[name].weight, b))
            return float(nn.functional.cross_entropy(net(x), y))
    finally:
        net.load_state_dict(saved)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--probes", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)
    budget = (2 * 8 + 3 * 4) * 32 * 32 / 8  # bytes: two layers at 8 bits, three at 4
    splits = [c for c in itertools.product((4, 8), repeat=5) if sum(c) == 28]
    rows = []
    for seed in range(args.seeds):
        net, x, y = trained(seed)
        cfg = HawqConfig(choices=(4, 8), probes=args.probes, seed=seed, layers=tuple(HIDDEN))
        data = [(x[:512], y[:512]), (x[512:], y[512:])]
        rec = hawq_bits(net, nn.functional.cross_entropy, data, budget, config=cfg)
        rand = sorted(loss_with(net, dict(zip(HIDDEN, c, strict=True)), x, y) for c in splits)
        h = loss_with(net, rec.bits, x, y)
        rows.append(
            {
                "seed": seed,
                "hawq_bits": rec.bits,
                "traces": {lb.layer: lb.trace for lb in rec.layers},
                "float_loss": loss_with(net, {}, x, y),
                "hawq_loss": h,
                "random_mean_loss": sum(rand) / len(rand),
                "random_best_loss": rand[0],
                "random_worst_loss": rand[-1],
                "splits_better_than_hawq": sum(r < h - 1e-12 for r in rand),
                "splits": len(rand),
            }
        )
        print(rows[-1])
    machine = {**machine_info(1), "load_average_1m": os.getloadavg()[0]}
    result = {"budget_bytes": budget, "probes": args.probes, "machine": machine, "rows": rows}
    OUT.mkdir(exist_ok=True)
    with atomic_path(OUT / "hawq_vs_random.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# HAWQ-V3 bits vs random 4/8 splits of equal size (5 hidden layers, avg 5.6 bits)",
        "",
        machine_line(machine),
        "",
        "| seed | HAWQ bits (layers 2..10) | float loss | HAWQ loss | random mean | "
        "random best | random worst | splits better than HAWQ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        bits = "/".join(str(r["hawq_bits"][n]) for n in HIDDEN)
        lines.append(
            f"| {r['seed']} | {bits} | {r['float_loss']:.4f} | {r['hawq_loss']:.4f} "
            f"| {r['random_mean_loss']:.4f} | {r['random_best_loss']:.4f} "
            f"| {r['random_worst_loss']:.4f} | {r['splits_better_than_hawq']} of {r['splits']} |"
        )
    with atomic_path(OUT / "hawq_vs_random.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
