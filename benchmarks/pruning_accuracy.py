"""ResNet-56 on the built-in ``signs`` data, pruned to half its MACs and fine-tuned:
edgeslim vs Torch-Pruning 1.6.1 at the same MACs, criterion and fine-tuning epochs.

The trained ResNet-56 comes from the shared cache (``fit_model.pretrained``; trained
and cached on first use, resumable per epoch). Torch-Pruning is installed for this
benchmark only (``pip install torch-pruning==1.6.1``).

    python benchmarks/pruning_accuracy.py --base-epochs 6 --ft-epochs 3

``--distill kd`` fine-tunes every pruned model (Torch-Pruning's too, so the comparison
stays equal) with Hinton KD from the dense model, as ``edgeslim prune --distill kd``
does. ``--seeds 0,1,2`` repeats the fine-tuning with other seeds (pruning is
deterministic for L1) and reports the mean.

``--aligned`` adds edgeslim's default, widths aligned to the multiple this CPU's
measured latency staircase favours (``round_to="auto"``, :mod:`edgeslim.prune.align`),
which moves which channels stay.

``--search`` adds edgeslim's sensitivity search at the same MACs
(``edgeslim prune --search``, :mod:`edgeslim.search.prune_target`): each
group's L1 pruning damage is measured at a few ratios on validation batches and a
MILP picks the per-group ratios with the least total damage within the MAC budget.

edgeslim's uniform L1 (a group norm) picks exactly Torch-Pruning's
channels; when the two pruned models are equal parameter by parameter, the
uniform variant is not fine-tuned twice: its row says so and repeats
Torch-Pruning's numbers.

Writes benchmarks/results/pruning_accuracy.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from edgeslim.bench.accuracy import evaluate_model
from edgeslim.bench.macs import count_macs, count_params
from edgeslim.data import load_dataset, make_loader
from edgeslim.distill.distiller import Distiller
from edgeslim.distill.losses import LossSpec
from edgeslim.prune import PruneConfig, prune
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer
from edgeslim.workflows.train import pretrained

RESULTS = Path(__file__).parent / "results"


def tp_prune_to_macs(
    model: torch.nn.Module, x: torch.Tensor, target: int, ignored=lambda m: [m.fc]
) -> torch.nn.Module:
    """Torch-Pruning L1 (uniform; ``ignored(model)`` kept whole, default the fc) at the
    largest kept width with MACs <= target."""
    import torch_pruning as tp

    def run(ratio: float) -> torch.nn.Module:
        m = copy.deepcopy(model).eval()
        tp.pruner.MetaPruner(
            m,
            x,
            importance=tp.importance.MagnitudeImportance(p=1),
            pruning_ratio=ratio,
            ignored_layers=ignored(m),
        ).step()
        return m

    lo, hi, best = 0.0, 0.95, None
    for _ in range(12):
        mid = (lo + hi) / 2
        m = run(mid)
        if count_macs(m, x)[0] <= target:
            hi, best = mid, m
        else:
            lo = mid
    return best if best is not None else run(hi)


def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k]) for k in sa
    )


def searched(model: torch.nn.Module, macs: int) -> torch.nn.Module:
    """``edgeslim prune --search --target-macs``: damage on 4 validation batches, L1."""
    import itertools

    from edgeslim.models.inputs import InputSpec
    from edgeslim.search.prune_target import search_to_target

    val = make_loader(load_dataset("signs", "val"), 128, shuffle=False)
    spec = InputSpec((1, 3, 32, 32))
    res = search_to_target(
        model, spec, PruneConfig(target_macs=macs), list(itertools.islice(val, 4))
    )
    print(res.message, flush=True)
    return res.model


FAST = {"amp": True, "channels_last": True}  # bf16 autocast + NHWC: ~2x on this CPU


def finetune(
    model: torch.nn.Module,
    epochs: int,
    lr: float,
    seed: int,
    fast: dict,
    teacher: torch.nn.Module | None = None,
    distill: str | None = None,
) -> list[dict]:
    cfg = TrainConfig(epochs=epochs, lr=lr, seed=seed, **fast)
    loss_fn = None
    if distill:
        x = torch.randn(4, 3, 32, 32)
        loss_fn = Distiller.build(model, [teacher], distill, LossSpec(), x)
    return Trainer(model, cfg, loss_fn=loss_fn, extra=loss_fn, progress=False).fit(
        load_dataset("signs", "train", augment=True), load_dataset("signs", "val")
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-epochs", type=int, default=6)
    ap.add_argument("--ft-epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--criterion", default="l1")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--also-global",
        action="store_true",
        help="also run edgeslim with global ranking + Taylor at the same MACs",
    )
    ap.add_argument(
        "--search",
        action="store_true",
        help="also run edgeslim's sensitivity search (MILP) at the same MACs",
    )
    ap.add_argument(
        "--aligned",
        action="store_true",
        help="also run edgeslim with the default alignment (round_to auto) at the same MACs",
    )
    ap.add_argument("--fp32", action="store_true", help="train in fp32 NCHW (slower)")
    ap.add_argument("--distill", default=None, help="fine-tune with KD from the dense model")
    ap.add_argument("--seeds", default="0", help="fine-tuning seeds, comma separated")
    ap.add_argument("--out", default="pruning_accuracy.json", help="file under results/")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    fast = {} if args.fp32 else FAST
    if args.threads:
        torch.set_num_threads(args.threads)
    base_cfg = TrainConfig(epochs=args.base_epochs, **fast)
    base = pretrained("resnet56", "signs", base_cfg, progress=False)
    model = base.model.eval()
    x = torch.randn(1, 3, 32, 32)
    test = make_loader(load_dataset("signs", "test"), 256, shuffle=False)
    calib = make_loader(load_dataset("signs", "train"), 64, shuffle=True)
    macs0 = count_macs(model, x)[0]
    rows = [
        {
            "model": "ResNet-56 (dense)",
            "params": count_params(model),
            "macs": macs0,
            "top1_pruned": None,
            "top1": evaluate_model(model, test)["top1"],
        }
    ]
    target = macs0 // 2
    variants = [
        (
            f"edgeslim {args.criterion} uniform",
            PruneConfig(target_macs=target, criterion=args.criterion),
        )
    ]
    if args.aligned:  # the CLI's default: widths aligned to this CPU's measured staircase
        from edgeslim.prune.align import resolve_alignment

        a = resolve_alignment(model, x, "auto", threads=args.threads).round_to
        variants.append(
            (
                f"edgeslim {args.criterion} uniform, aligned to {a} (default auto)",
                PruneConfig(target_macs=target, criterion=args.criterion, round_to=a),
            )
        )
    if args.also_global:
        variants.append(
            (
                "edgeslim taylor global",
                PruneConfig(target_macs=target, criterion="taylor", global_ranking=True),
            )
        )
    pruned, seconds = [], {}
    for name, cfg in variants:
        t0 = time.perf_counter()
        pruned.append((name, prune(model, x, cfg, data=calib).model))
        seconds[name] = time.perf_counter() - t0
    tp_name = "Torch-Pruning 1.6.1 L1 uniform"
    t0 = time.perf_counter()
    theirs = tp_prune_to_macs(model, x, count_macs(pruned[0][1], x)[0])
    seconds[tp_name] = time.perf_counter() - t0
    if args.search:
        name = "edgeslim l1 + sensitivity search (MILP)"
        t0 = time.perf_counter()
        pruned.append((name, searched(model, count_macs(theirs, x)[0])))
        seconds[name] = time.perf_counter() - t0
    suffix = f" + {args.distill} from dense" if args.distill else ""
    for name, pm in [(tp_name, theirs), *pruned]:
        if name != tp_name and same(pm, theirs):  # Torch-Pruning's row is rows[1]
            rows.append(
                {**rows[1], "model": name + suffix, "identical_to": tp_name, "history": None}
            )
            print(name, "is parameter for parameter", tp_name, flush=True)
            continue
        before = evaluate_model(pm, test)["top1"]
        per_seed, hists = [], []
        for seed in seeds:
            m = copy.deepcopy(pm)
            hists.append(finetune(m, args.ft_epochs, args.lr, seed, fast, model, args.distill))
            per_seed.append(evaluate_model(m, test)["top1"])
            print(name, "seed", seed, per_seed[-1], flush=True)
        rows.append(
            {
                "model": name + suffix,
                "params": count_params(pm),
                "macs": count_macs(pm, x)[0],
                "top1_pruned": before,
                "top1": sum(per_seed) / len(per_seed),
                "top1_per_seed": per_seed,
                "history": hists,
            }
        )
    out = {
        "setting": f"ResNet-56 trained {args.base_epochs} epochs on signs; pruned to <= half "
        f"MACs; fine-tuned {args.ft_epochs} epochs (SGD, lr {args.lr}, cosine"
        + (f", {args.distill} from the dense model" if args.distill else "")
        + f"), seeds {args.seeds}",
        "prune_seconds": seconds,
        "command": "python benchmarks/pruning_accuracy.py " + " ".join(sys.argv[1:]),
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(out["setting"])
    print("| model | params | MMACs | top-1 after pruning | top-1 after fine-tune | drop |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        pre = f"{100 * r['top1_pruned']:.2f}" if r["top1_pruned"] is not None else "-"
        print(
            f"| {r['model']} | {r['params']:,} | {r['macs'] / 1e6:.1f} | {pre} | "
            f"{100 * r['top1']:.2f} | {100 * (rows[0]['top1'] - r['top1']):+.2f} |"
        )


if __name__ == "__main__":
    main()
