"""A KITTI-format dataset edgeslim did not render, end to end: train, prune, quantize, evaluate.

Issue 12's check: "run a KITTI-format dataset that the tests generate (not the built-in
renderer) end to end: train 2 epochs, prune, quantize, evaluate". :func:`write_kitti`
writes KITTI's own layout (``training/image_2/*.png`` + ``training/label_2/*.txt``, 15
fields a line, KITTI's 1242x375-like 3.3:1 aspect) with its own simple drawing code,
shared with nothing in ``edgeslim.data``: cars (a body, a window band, two wheels),
pedestrians and cyclists on a sky/road split with noise, objects truncated at the image
border (KITTI's ``truncated`` field set), ``DontCare`` regions holding unlabelled
clutter, and some empty label files. Then the user's CLI, step by step:

1. ``edgeslim train yolov5n --data kitti:ROOT,size=S --epochs 2`` (the detection task's
   default optimiser: YOLOv5's SGD at lr 0.01);
2. ``edgeslim prune FP32 --ratio R --data ... --finetune-epochs F``;
3. ``edgeslim quantize PRUNED --calib-data ... -o INT8`` (INT8 QDQ ONNX);
4. ``edgeslim evaluate`` on each of the three, the INT8 one as the ONNX file on ONNX Runtime.

    python benchmarks/kitti_end_to_end.py --n 400 --size 128

Writes ``benchmarks/results/kitti_end_to_end.{json,md}`` with the CPU model
(``--results DIR`` elsewhere). The test (``tests/bench/test_kitti_end_to_end.py``) runs it
on 20 images of 64x64 px.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
WIDTH, HEIGHT = 372, 112  # KITTI's 1242 x 375, a third of it
HORIZON = 0.45  # fraction of the height where the road starts


def _fill(img: np.ndarray, x1: float, y1: float, x2: float, y2: float, colour) -> None:
    h, w = img.shape[:2]
    a, b = max(int(round(y1)), 0), min(int(round(y2)), h)
    c, d = max(int(round(x1)), 0), min(int(round(x2)), w)
    if a < b and c < d:
        img[a:b, c:d] = colour


def _disc(img: np.ndarray, cx: float, cy: float, r: float, colour) -> None:
    h, w = img.shape[:2]
    yy, xx = np.ogrid[:h, :w]
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = colour


def _car(img, rng, x1, y1, w, h) -> None:
    body = rng.integers(40, 230, 3)
    _fill(img, x1, y1 + 0.35 * h, x1 + w, y1 + 0.85 * h, body)
    _fill(img, x1 + 0.2 * w, y1, x1 + 0.8 * w, y1 + 0.4 * h, body * 0.8)
    _fill(img, x1 + 0.27 * w, y1 + 0.07 * h, x1 + 0.73 * w, y1 + 0.33 * h, (30, 40, 60))
    for fx in (0.22, 0.78):
        _disc(img, x1 + fx * w, y1 + 0.85 * h, 0.15 * h, (15, 15, 15))


def _person(img, rng, x1, y1, w, h, bike: bool) -> None:
    coat = rng.integers(20, 240, 3)
    _disc(img, x1 + w / 2, y1 + 0.1 * h, 0.1 * h, (220, 180, 150))
    _fill(img, x1 + 0.25 * w, y1 + 0.2 * h, x1 + 0.75 * w, y1 + 0.6 * h, coat)
    if bike:
        for fx in (0.2, 0.8):
            _disc(img, x1 + fx * w, y1 + 0.8 * h, 0.18 * h, (20, 20, 20))
    else:
        _fill(img, x1 + 0.3 * w, y1 + 0.6 * h, x1 + 0.48 * w, y1 + h, (40, 40, 80))
        _fill(img, x1 + 0.52 * w, y1 + 0.6 * h, x1 + 0.7 * w, y1 + h, (40, 40, 80))


KINDS = {  # KITTI type: (width/height of the box, height at the bottom row in px, draw)
    "Car": (2.0, 40.0, lambda img, rng, *b: _car(img, rng, *b)),
    "Pedestrian": (0.45, 48.0, lambda img, rng, *b: _person(img, rng, *b, bike=False)),
    "Cyclist": (0.8, 46.0, lambda img, rng, *b: _person(img, rng, *b, bike=True)),
}


def _scene(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, list[str]]:
    horizon = HORIZON * height
    img = np.empty((height, width, 3), np.float64)
    img[: int(horizon)] = rng.uniform(120, 220, 3)  # sky
    img[int(horizon) :] = rng.uniform(60, 110) * np.ones(3)  # road
    lines = []
    for _ in range(rng.integers(0, 3)):  # unlabelled clutter: DontCare
        cw, ch = rng.uniform(8, 30, 2) * width / WIDTH
        cx, cy = rng.uniform(0, width - cw), rng.uniform(horizon - ch, height - ch)
        _fill(img, cx, cy, cx + cw, cy + ch, rng.integers(0, 255, 3))
        lines.append(f"DontCare -1 -1 -10 {cx:.2f} {cy:.2f} {cx + cw:.2f} {cy + ch:.2f} "
                     "-1 -1 -1 -1000 -1000 -1000 -10")  # fmt: skip
    objects = []
    for _ in range(rng.integers(0, 5)):
        kind = rng.choice(list(KINDS))
        aspect, bottom_h, _ = KINDS[kind]
        y2 = rng.uniform(horizon + 6, height + 0.1 * height)  # nearer: lower and larger
        h = bottom_h * height / HEIGHT * (y2 - horizon) / (height - horizon)
        w = aspect * h
        x1 = rng.uniform(-0.3 * w, width - 0.7 * w)  # some cut by the border
        objects.append((y2, kind, x1, y2 - h, w, h))
    for y2, kind, x1, y1, w, h in sorted(objects):  # far first: near ones occlude them
        KINDS[kind][2](img, rng, x1, y1, w, h)
        bx1, by1, bx2, by2 = max(x1, 0), max(y1, 0), min(x1 + w, width - 1), min(y2, height - 1)
        if bx2 - bx1 < 2 or by2 - by1 < 2:
            continue
        cut = 1 - (bx2 - bx1) * (by2 - by1) / (w * h)
        lines.append(f"{kind} {cut:.2f} 0 0.00 {bx1:.2f} {by1:.2f} {bx2:.2f} {by2:.2f} "
                     "1.50 1.60 3.90 0.00 1.60 10.00 0.00")  # fmt: skip
    img += rng.normal(0, 6, img.shape)  # sensor noise
    return np.clip(img, 0, 255).astype(np.uint8), lines


def write_kitti(
    root: Path, n: int, seed: int = 0, width: int = WIDTH, height: int = HEIGHT
) -> Path:
    """``n`` scenes in KITTI's layout under ``root/training``; returns ``root``.

    Example:
        >>> # write_kitti(Path("/tmp/k"), 20)  # then the data spec kitti:/tmp/k
    """
    from PIL import Image

    images, labels = root / "training" / "image_2", root / "training" / "label_2"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img, lines = _scene(rng, width, height)
        Image.fromarray(img).save(images / f"{i:06d}.png")
        (labels / f"{i:06d}.txt").write_text("".join(f"{line}\n" for line in lines))
    return root


def _cli(*args: str) -> None:
    from edgeslim.cli.main import main

    print("$ edgeslim " + " ".join(args), flush=True)
    if main(list(args)) != 0:
        raise SystemExit(f"edgeslim {args[0]} failed")


def _evaluate(model: Path, data: str, out: Path) -> dict:
    _cli("evaluate", str(model), "--data", data, "--json", str(out))
    return json.loads(out.read_text())


def run(args: argparse.Namespace, work: Path) -> dict:
    root = write_kitti(work / "kitti", args.n, args.seed)
    data = f"kitti:{root},size={args.size}"
    fp32, pruned, int8 = work / "fp32", work / "pruned", work / "int8"
    bs = str(args.batch_size)
    t0 = time.perf_counter()
    _cli("train", "yolov5n", "--data", data, "--epochs", str(args.epochs), "--batch-size", bs,
         "--seed", str(args.seed), "-o", str(fp32))  # fmt: skip
    t1 = time.perf_counter()
    _cli("prune", str(fp32), "--ratio", str(args.ratio), "--data", data,
         "--finetune-epochs", str(args.finetune_epochs), "--lr", str(args.lr),
         "--runs", str(args.runs), "-o", str(pruned))  # fmt: skip
    t2 = time.perf_counter()
    _cli("quantize", str(pruned), "--calib-data", data, "--calib-batches", "4",
         "--runs", str(args.runs),
         "-o", str(int8))  # fmt: skip
    t3 = time.perf_counter()
    rows = {}
    for name, model in (("fp32", fp32), ("pruned", pruned), ("int8", int8 / "model.onnx")):
        res = _evaluate(model, data, work / f"{name}.json")
        rows[name] = {"model": str(model.relative_to(work)), "n": res["n"],
                      "map50": res["map50"], "map": res["map"]}  # fmt: skip
    from edgeslim.bench.macs import count_params
    from edgeslim.models.saved import load_saved

    for name, model in (("fp32", fp32), ("pruned", pruned)):
        rows[name]["params"] = count_params(load_saved(model).model)
    rows["int8"]["bytes"] = (int8 / "model.onnx").stat().st_size
    seconds = {"train": t1 - t0, "prune": t2 - t1, "quantize": t3 - t2}
    return {"rows": rows, "seconds": seconds, "data": data}


def report(res: dict, args: argparse.Namespace, cpu: str) -> str:
    lines = [
        "# A KITTI-format dataset end to end: train, prune, quantize, evaluate (issue 12)",
        "",
        f"CPU: {cpu}. Data: {args.n} scenes written by `benchmarks/kitti_end_to_end.py` in "
        f"KITTI's layout ({WIDTH}x{HEIGHT} px, DontCare regions, truncated boxes, empty label "
        f"files), read as `kitti:DIR,size={args.size}`; test split = every 10th scene. "
        f"Train {args.epochs} epochs (the detection defaults: SGD, lr 0.01, batch "
        f"{args.batch_size}), prune {args.ratio:.0%} of the channels + "
        f"{args.finetune_epochs} fine-tune epoch(s) at lr {args.lr}, "
        "INT8 PTQ (QDQ ONNX, evaluated on ONNX Runtime).",
        "",
        "| model | test mAP@0.5 | test mAP@0.5:0.95 | parameters / file |",
        "|---|---:|---:|---|",
    ]
    for name, r in res["rows"].items():
        size = f"{r['params']:,} params" if "params" in r else f"{r['bytes'] / 1e6:.2f} MB ONNX"
        lines.append(f"| {name} (`{r['model']}`) | {r['map50']:.2%} | {r['map']:.2%} | {size} |")
    s = res["seconds"]
    lines += ["", f"Wall: train {s['train']:.0f} s, prune {s['prune']:.0f} s, "
              f"quantize {s['quantize']:.0f} s.", ""]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=400, help="scenes written (a tenth is the test split)")
    p.add_argument("--size", type=int, default=128, help="input side the loader resizes to")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.01, help="of the pruned model's fine-tuning")
    p.add_argument("--ratio", type=float, default=0.3)
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=int, default=10, help="latency runs of prune and quantize")
    p.add_argument("--work", type=Path, default=None, help="keep the files here (default: temp)")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    from edgeslim.core.atomic import write_text_atomic
    from edgeslim.core.cpu import cpu_model

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        res = run(args, work)
    cpu = cpu_model()
    res |= {"cpu": cpu, "args": {k: str(v) for k, v in vars(args).items()}}
    args.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results / "kitti_end_to_end.json", json.dumps(res, indent=2))
    write_text_atomic(args.results / "kitti_end_to_end.md", report(res, args, cpu))
    return res


if __name__ == "__main__":
    main()
