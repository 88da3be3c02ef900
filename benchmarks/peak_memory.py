"""Peak resident memory of the CLI steps: prune, then PTQ INT8, per model (issue 17, section 5).

Each step is the real ``edgeslim`` command run in a fresh Python process, so one step's
peak never hides inside another's. The peak is that child's ``ru_maxrss`` as returned by
``os.wait4`` for it alone (Linux: KiB; it counts reaped grandchildren too). A ``load``
step (import edgeslim, build the model, one forward pass) gives each model's floor.

Writes ``benchmarks/results/peak_memory.json`` and ``.md``. Run:

    python benchmarks/peak_memory.py [--models resnet50:224,yolov5s:256] [--calib-batches 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.cpu import cpu_model

OUT = Path(__file__).parent / "results"
# The quantize CLI's calibration loader batch (fixed in workflows.quantize.calibration_loader):
# 4 batches of 32 are the 128 images of "16 batches of 8", in 4x larger activation batches.
CALIB_BATCH = 32

LOAD = (
    "import sys, torch; from edgeslim.models.spec import load_model; "
    "lm = load_model(sys.argv[1], input_shape=tuple(int(s) for s in sys.argv[2].split(','))); "
    "torch.inference_mode()(lm.model.eval())(lm.input.example())"
)
CLI = "import sys; from edgeslim.cli.main import main; sys.exit(main(sys.argv[1:]))"


def peak_kib(argv: list[str]) -> tuple[int, float]:
    """Run ``argv`` in a fresh process; its peak RSS (KiB) and wall time (s). Fails loudly."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"step failed ({proc.returncode}): {shlex.join(argv)}\n{out[-3000:]}")
    return usage.ru_maxrss, time.perf_counter() - t0


def steps(model: str, side: int, work: Path, calib_batches: int, threads: int) -> list[tuple]:
    """(step name, shown command, argv) for one model: load, prune, PTQ of the pruned model."""
    shape = f"1,3,{side},{side}"
    pruned = work / f"{model}_pruned"
    speed = ["--batch", "1", "--runs", "3", "--threads", str(threads)]
    prune = [model, "--input-shape", shape, "--ratio", "0.5", "--round-to", "8"]
    prune += [*speed, "-o", str(pruned)]
    ptq = [str(pruned), "--calib-data", f"random:3,{side},{side}"]
    ptq += ["--calib-batches", str(calib_batches), *speed, "-o", str(work / f"{model}_int8")]
    py = [sys.executable, "-c"]
    return [
        ("load + forward", "(import, build, one forward at batch 1)", py + [LOAD, model, shape]),
        ("prune", "edgeslim prune " + shlex.join(prune), py + [CLI, "prune", *prune]),
        ("PTQ INT8 (pruned)", "edgeslim quantize " + shlex.join(ptq), py + [CLI, "quantize", *ptq]),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default="resnet50:224,yolov5s:256", help="NAME:SIDE,...")
    ap.add_argument("--calib-batches", type=int, default=4, help=f"of {CALIB_BATCH} images")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for item in args.models.split(","):
            model, _, side = item.partition(":")
            for step, shown, argv in steps(
                model, int(side), Path(d), args.calib_batches, args.threads
            ):
                kib, wall = peak_kib(argv)
                shown = shown.replace(d, "$WORK")  # the temporary folder, gone after the run
                row = {"model": model, "side": int(side), "step": step, "command": shown}
                row |= {"peak_rss_mib": round(kib / 1024, 1), "wall_s": round(wall, 1)}
                rows.append(row)
                print(row, flush=True)
    meta = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "calib_batches": args.calib_batches,
        "calib_batch_size": CALIB_BATCH,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": shlex.join(["python", "benchmarks/peak_memory.py", *sys.argv[1:]]),
    }
    OUT.mkdir(exist_ok=True)
    write_text_atomic(OUT / "peak_memory.json", json.dumps({**meta, "rows": rows}, indent=2))
    lines = [
        "# Peak resident memory: prune and PTQ INT8 (issue 17, section 5)",
        "",
        f"CPU: {meta['cpu']} ({meta['cores']} cores, `lscpu | grep 'Model name'`), "
        f"threads {meta['threads']}, torch {meta['torch']}, {meta['date']}.",
        "",
        "Each step is a fresh process; peak = its `ru_maxrss` from `os.wait4` (includes the "
        "CLI's own export, ONNX Runtime sessions and latency runs: `--batch 1 --runs 3`). "
        f"PTQ calibrates the pruned model on random data: {meta['calib_batches']} batches of "
        f"{CALIB_BATCH} ({meta['calib_batches'] * CALIB_BATCH} images; the CLI's loader batch "
        "is fixed at 32, so the 16 batches of 8 asked for are run as 4 of 32). The "
        "`random:` split itself is 256 images held in memory.",
        "",
        f"Reproduce: `{meta['command']}`",
        "",
        "| model | input | step | peak RSS MiB | wall s | command |",
        "|---|---|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['side']} | {r['step']} | {r['peak_rss_mib']} | {r['wall_s']} "
            f"| `{r['command']}` |"
        )
    write_text_atomic(OUT / "peak_memory.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
