"""``edgeslim train`` against a plain PyTorch loop on held-out data edgeslim never saw.

For each generated dataset (:mod:`heldout_data`: ``glyphs26``, ``texshapes``) the zoo
ResNet-20 is trained for the same number of epochs twice: by ``edgeslim train``'s code
path with its default settings (:func:`edgeslim.workflows.train.train_model`, exactly what
the CLI runs) and by :func:`reference_loop.reference_train`. Both report test top-1; the
target is edgeslim within 1 point of the reference. Jobs run two at a time, one thread each.
The reference does not depend on edgeslim's training code, so its results are kept in
``--data-dir`` (``reference-<dataset>-e<epochs>-s<seed>.json``) and reused by later runs;
``--fresh`` retrains it.

Usage (the numbers in benchmarks/results/train_heldout.md come from exactly this)::

    nice -n 10 python benchmarks/train_heldout.py --epochs 15
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

RESULTS = Path(__file__).parent / "results"


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line
        )
    except (OSError, subprocess.CalledProcessError, IndexError):
        return platform.processor() or "unknown"


def _job(kind: str, npz: str, epochs: int, seed: int, lr: str) -> dict:
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if kind == "reference":
        from reference_loop import reference_train

        r = reference_train(npz, epochs, seed=seed)
        out = {"test_top1": r["test_top1"], "val_top1": r["val_top1"]}
    else:
        from edgeslim.train.config import TrainConfig
        from edgeslim.workflows.train import train_model

        cfg = TrainConfig(epochs=epochs, seed=seed, lr="auto" if lr == "auto" else float(lr))
        with tempfile.TemporaryDirectory() as d:
            lm = train_model("resnet20", f"npz:{npz}", cfg, d, progress=False)
        out = {
            "test_top1": lm.meta["test_top1"],
            "val_top1": [h["val_top1"] for h in lm.meta["history"]],
            "lr": lm.meta.get("lr_auto", cfg.lr),
            "normalization": lm.meta.get("normalization"),
        }
    return {"kind": kind, "seconds": time.perf_counter() - t0, **out}


def write_markdown(result: dict, path: Path) -> None:
    lines = [
        "# `edgeslim train` vs a plain PyTorch loop on held-out generated data",
        "",
        f"ResNet-20 (zoo), {result['epochs']} epochs, seed {result['seed']}, test top-1. "
        f"CPU: {result['cpu']} ({result['threads']} thread per job, two jobs at a time, "
        "shared machine: times are indicative only).",
        "Command: `nice -n 10 python benchmarks/train_heldout.py "
        f"--epochs {result['epochs']}`; data from `benchmarks/heldout_data.py` "
        "(4,000 train / 500 val / 1,000 test images, 32x32).",
        "",
        "| dataset | classes | reference loop | edgeslim train | difference (points) |",
        "|---|---|---|---|---|",
    ]
    for name, d in result["datasets"].items():
        ref, es = d["reference"]["test_top1"], d["edgeslim"]["test_top1"]
        lines.append(
            f"| {name} | {d['classes']} | {100 * ref:.2f}% | {100 * es:.2f}% "
            f"| {100 * (es - ref):+.2f} |"
        )
    lines += ["", "Validation top-1 per epoch:", ""]
    for name, d in result["datasets"].items():
        for kind in ("reference", "edgeslim"):
            vals = " ".join(f"{100 * v:.1f}" for v in d[kind]["val_top1"])
            lines.append(f"- {name}, {kind}: {vals}")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    import heldout_data

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", default="0.1", help="edgeslim's --lr (a number or 'auto')")
    ap.add_argument("--datasets", nargs="+", default=list(heldout_data.DATASETS))
    ap.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "edgeslim_heldout"))
    ap.add_argument("--out", default=str(RESULTS / "train_heldout.json"))
    ap.add_argument("--fresh", action="store_true", help="retrain the reference too")
    args = ap.parse_args()
    paths = {n: str(heldout_data.ensure(n, args.data_dir, args.seed)) for n in args.datasets}
    cache = {
        n: Path(args.data_dir) / f"reference-{n}-e{args.epochs}-s{args.seed}.json" for n in paths
    }
    done = {
        ("reference", n): json.loads(c.read_text())
        for n, c in cache.items()
        if c.is_file() and not args.fresh
    }
    jobs = [(k, n) for n in args.datasets for k in ("reference", "edgeslim") if (k, n) not in done]
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = {
            job: pool.submit(_job, job[0], paths[job[1]], args.epochs, args.seed, args.lr)
            for job in jobs
        }
        for job, f in futures.items():
            done[job] = f.result()
            if job[0] == "reference":
                cache[job[1]].write_text(json.dumps(done[job]) + "\n")
    result = {
        "epochs": args.epochs,
        "seed": args.seed,
        "edgeslim_lr": args.lr,
        "cpu": _cpu(),
        "threads": 1,
        "datasets": {
            n: {
                "classes": heldout_data.DATASETS[n][1],
                "reference": done[("reference", n)],
                "edgeslim": done[("edgeslim", n)],
            }
            for n in args.datasets
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, out.with_suffix(".md"))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
