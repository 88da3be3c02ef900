"""Two hard held-out image datasets that edgeslim never saw, written as ``.npz`` files.

- ``glyphs26``: the 26 capital letters, drawn from a stroke font defined here (so no
  system font is involved), under a random affine map (rotation, shear, scale, shift),
  with a random stroke width and colour, on a cluttered textured background that also
  carries distractor strokes taken from other letters.
- ``texshapes``: 10 shapes whose fill is one procedural texture (stripes, checks, dots,
  noise) and whose background is another, in colours drawn independently; a quarter of
  the fills have the background's mean colour, so the shape is a texture boundary only.

Both are rendered at 64x64 and box-downsampled to 32x32 ``uint8`` ``N,H,W,C`` with
arrays ``x_train / y_train / x_val / y_val / x_test / y_test`` (the ``npz:`` layout of
:mod:`edgeslim.data.npz`). Generation is deterministic: the same seed gives the same
bytes. Files go to a cache directory, never into the repository::

    python benchmarks/heldout_data.py --out /tmp/heldout   # writes glyphs26.npz, texshapes.npz
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HI, LO = 64, 32  # render size, stored size (px)
SPLITS = {"train": 4000, "val": 500, "test": 1000}

# Stroke font on a 0..1 box (y down): each letter is a list of polylines.
_C = [(0.85, 0.2), (0.6, 0.0), (0.3, 0.0), (0.1, 0.2), (0.1, 0.8), (0.3, 1.0), (0.6, 1.0)]
LETTERS: dict[str, list[list[tuple[float, float]]]] = {
    "A": [[(0.1, 1), (0.5, 0), (0.9, 1)], [(0.27, 0.6), (0.73, 0.6)]],
    "B": [[(0.15, 0), (0.15, 1), (0.7, 1), (0.85, 0.85), (0.85, 0.62), (0.65, 0.5), (0.15, 0.5)],
          [(0.15, 0), (0.65, 0), (0.8, 0.12), (0.8, 0.38), (0.65, 0.5)]],
    "C": [_C + [(0.85, 0.8)]],
    "D": [[(0.15, 0), (0.15, 1), (0.55, 1), (0.85, 0.75), (0.85, 0.25), (0.55, 0), (0.15, 0)]],
    "E": [[(0.85, 0), (0.15, 0), (0.15, 1), (0.85, 1)], [(0.15, 0.5), (0.65, 0.5)]],
    "F": [[(0.85, 0), (0.15, 0), (0.15, 1)], [(0.15, 0.5), (0.65, 0.5)]],
    "G": [_C + [(0.85, 0.8), (0.85, 0.55), (0.55, 0.55)]],
    "H": [[(0.15, 0), (0.15, 1)], [(0.85, 0), (0.85, 1)], [(0.15, 0.5), (0.85, 0.5)]],
    "I": [[(0.5, 0), (0.5, 1)], [(0.3, 0), (0.7, 0)], [(0.3, 1), (0.7, 1)]],
    "J": [[(0.35, 0), (0.8, 0)], [(0.65, 0), (0.65, 0.8), (0.45, 1), (0.25, 1), (0.1, 0.8)]],
    "K": [[(0.15, 0), (0.15, 1)], [(0.85, 0), (0.15, 0.6)], [(0.4, 0.42), (0.85, 1)]],
    "L": [[(0.15, 0), (0.15, 1), (0.85, 1)]],
    "M": [[(0.1, 1), (0.1, 0), (0.5, 0.6), (0.9, 0), (0.9, 1)]],
    "N": [[(0.15, 1), (0.15, 0), (0.85, 1), (0.85, 0)]],
    "O": [[(0.3, 0), (0.7, 0), (0.9, 0.25), (0.9, 0.75), (0.7, 1), (0.3, 1), (0.1, 0.75),
           (0.1, 0.25), (0.3, 0)]],
    "P": [[(0.15, 1), (0.15, 0), (0.7, 0), (0.85, 0.15), (0.85, 0.4), (0.7, 0.55), (0.15, 0.55)]],
    "Q": [[(0.3, 0), (0.7, 0), (0.9, 0.25), (0.9, 0.75), (0.7, 1), (0.3, 1), (0.1, 0.75),
           (0.1, 0.25), (0.3, 0)], [(0.55, 0.7), (0.95, 1.05)]],
    "R": [[(0.15, 1), (0.15, 0), (0.7, 0), (0.85, 0.15), (0.85, 0.4), (0.7, 0.55), (0.15, 0.55)],
          [(0.45, 0.55), (0.85, 1)]],
    "S": [[(0.85, 0.15), (0.65, 0), (0.3, 0), (0.12, 0.18), (0.15, 0.38), (0.85, 0.62),
           (0.88, 0.82), (0.7, 1), (0.3, 1), (0.12, 0.85)]],
    "T": [[(0.1, 0), (0.9, 0)], [(0.5, 0), (0.5, 1)]],
    "U": [[(0.15, 0), (0.15, 0.75), (0.35, 1), (0.65, 1), (0.85, 0.75), (0.85, 0)]],
    "V": [[(0.1, 0), (0.5, 1), (0.9, 0)]],
    "W": [[(0.05, 0), (0.27, 1), (0.5, 0.35), (0.73, 1), (0.95, 0)]],
    "X": [[(0.12, 0), (0.88, 1)], [(0.88, 0), (0.12, 1)]],
    "Y": [[(0.1, 0), (0.5, 0.5), (0.9, 0)], [(0.5, 0.5), (0.5, 1)]],
    "Z": [[(0.12, 0), (0.88, 0), (0.12, 1), (0.88, 1)]],
}  # fmt: skip
SHAPES = (
    "circle", "square", "triangle", "diamond", "pentagon",
    "hexagon", "star", "cross", "ring", "crescent",
)  # fmt: skip


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, 3).astype(np.float32)


def _contrasting(rng: np.random.Generator, against: np.ndarray, min_dist: float) -> np.ndarray:
    """A random colour at least ``min_dist`` (L1 over RGB) from ``against`` when one is found."""
    for _ in range(20):
        c = _colour(rng)
        if np.abs(c - against).sum() >= min_dist:
            return c
    return 255.0 - against


def _texture(rng: np.random.Generator, size: int = HI) -> np.ndarray:
    """A ``size,size`` float map in [0, 1]: stripes, checks, dots or smooth noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    kind = rng.integers(4)
    period = rng.uniform(4, 12)
    angle = rng.uniform(0, math.pi)
    u = xx * math.cos(angle) + yy * math.sin(angle)
    v = -xx * math.sin(angle) + yy * math.cos(angle)
    if kind == 0:  # stripes
        return (np.sin(2 * math.pi * u / period) > 0).astype(np.float32)
    if kind == 1:  # checks
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    if kind == 2:  # dots
        d = np.hypot((u % period) - period / 2, (v % period) - period / 2)
        return (d < period * rng.uniform(0.2, 0.4)).astype(np.float32)
    coarse = rng.random((size // 8 + 1, size // 8 + 1)).astype(np.float32)  # smooth noise
    img = Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    return np.asarray(img, np.float32) / 255.0


def _background(rng: np.random.Generator) -> np.ndarray:
    """A textured two-colour background with a colour gradient, ``HI,HI,3`` float."""
    t = _texture(rng)[..., None]
    c0, c1 = _colour(rng), _colour(rng)
    img = c0 * (1 - t) + c1 * t
    ramp = np.linspace(-1, 1, HI, dtype=np.float32)
    grad = (ramp[:, None] if rng.random() < 0.5 else ramp[None, :])[..., None]
    return np.clip(img + grad * rng.uniform(-60, 60, 3).astype(np.float32), 0, 255)


def _affine(rng: np.random.Generator, scale: tuple[float, float]) -> np.ndarray:
    """A random 2x3 map from the unit box (centred) to pixels."""
    s = rng.uniform(*scale) * HI
    rot, shear = rng.uniform(-0.45, 0.45), rng.uniform(-0.3, 0.3)
    a = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
    a = a @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([s * rng.uniform(0.75, 1.1), s])
    centre = HI / 2 + rng.uniform(-0.12, 0.12, 2) * HI
    return np.hstack([a, centre[:, None]])


def _apply(m: np.ndarray, pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    p = np.asarray(pts, dtype=np.float64) - 0.5
    q = p @ m[:, :2].T + m[:, 2]
    return [tuple(r) for r in q]


def _strokes(draw: ImageDraw.ImageDraw, lines, m, width: int, fill) -> None:
    for line in lines:
        pts = _apply(m, line)
        draw.line(pts, fill=fill, width=width, joint="curve")
        r = width / 2  # round caps
        for x, y in (pts[0], pts[-1]):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)


def _downsample(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = img + rng.normal(0, rng.uniform(2, 12), img.shape)  # sensor noise
    small = np.clip(img, 0, 255).reshape(LO, HI // LO, LO, HI // LO, 3).mean(axis=(1, 3))
    return np.round(small).astype(np.uint8)


def glyph(label: int, rng: np.random.Generator) -> np.ndarray:
    """One ``32,32,3`` letter image of class ``label`` (0 = A)."""
    bg = _background(rng)
    img = Image.fromarray(bg.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    keys = list(LETTERS)
    for _ in range(rng.integers(0, 3)):  # thin distractor strokes from random letters
        other = LETTERS[keys[rng.integers(26)]]
        line = other[rng.integers(len(other))]
        m = _affine(rng, (0.4, 1.0))
        m[:, 2] += rng.uniform(-0.35, 0.35, 2) * HI
        _strokes(draw, [line], m, int(rng.integers(2, 4)), tuple(int(c) for c in _colour(rng)))
    m = _affine(rng, (0.5, 0.75))
    width = int(rng.integers(5, 10))
    ink = _contrasting(rng, bg.mean(axis=(0, 1)), 200)
    _strokes(draw, LETTERS[keys[label]], m, width, tuple(int(c) for c in ink))
    return _downsample(np.asarray(img, np.float32), rng)


def _shape_polygon(name: str, rng: np.random.Generator) -> list[tuple[float, float]]:
    def regular(n: int, r: float = 0.5, phase: float = 0.0) -> list[tuple[float, float]]:
        return [
            (0.5 + r * math.cos(phase + 2 * math.pi * k / n),
             0.5 + r * math.sin(phase + 2 * math.pi * k / n))
            for k in range(n)
        ]  # fmt: skip

    if name == "circle":
        return regular(48)
    if name == "square":
        return regular(4, 0.62, math.pi / 4)
    if name == "triangle":
        return regular(3, 0.58, -math.pi / 2)
    if name == "diamond":
        return [(0.5, 0.0), (0.82, 0.5), (0.5, 1.0), (0.18, 0.5)]
    if name == "pentagon":
        return regular(5, 0.52, -math.pi / 2)
    if name == "hexagon":
        return regular(6, 0.52)
    if name == "star":
        outer, inner = regular(5, 0.55, -math.pi / 2), regular(5, 0.22, -math.pi / 2 + math.pi / 5)
        return [p for pair in zip(outer, inner, strict=True) for p in pair]
    if name == "cross":
        a, b = 0.33, 0.67
        return [(a, 0), (b, 0), (b, a), (1, a), (1, b), (b, b), (b, 1), (a, 1), (a, b), (0, b),
                (0, a), (a, a)]  # fmt: skip
    raise ValueError(name)


def _shape_mask(name: str, rng: np.random.Generator) -> np.ndarray:
    mask = Image.new("L", (HI, HI), 0)
    draw = ImageDraw.Draw(mask)
    m = _affine(rng, (0.6, 0.85))
    if name in ("ring", "crescent"):
        draw.polygon(_apply(m, _shape_polygon("circle", rng)), fill=255)
        hole = _shape_polygon("circle", rng)
        if name == "ring":
            hole = [(0.5 + 0.5 * (x - 0.5), 0.5 + 0.5 * (y - 0.5)) for x, y in hole]
        else:
            hole = [(0.5 + 0.85 * (x - 0.5) + 0.3, 0.5 + 0.85 * (y - 0.5) - 0.1) for x, y in hole]
        draw.polygon(_apply(m, hole), fill=0)
    else:
        draw.polygon(_apply(m, _shape_polygon(name, rng)), fill=255)
    return np.asarray(mask, np.float32)[..., None] / 255.0


def texshape(label: int, rng: np.random.Generator) -> np.ndarray:
    """One ``32,32,3`` image of shape class ``label`` filled with a texture."""
    bg = _background(rng)
    t = _texture(rng)[..., None]
    fg = _colour(rng) * (1 - t) + _colour(rng) * t
    if rng.random() < 0.25:  # a quarter of the fills share the background's mean colour
        fg = fg - fg.mean(axis=(0, 1)) + bg.mean(axis=(0, 1))
    mask = _shape_mask(SHAPES[label], rng)
    img = bg * (1 - mask) + np.clip(fg, 0, 255) * mask
    return _downsample(img, rng)


DATASETS = {"glyphs26": (glyph, len(LETTERS)), "texshapes": (texshape, len(SHAPES))}


def generate(name: str, seed: int = 0, sizes: dict[str, int] | None = None) -> dict:
    """All splits of dataset ``name`` as ``{x_split: uint8 N,32,32,3, y_split: int64 N}``."""
    draw, classes = DATASETS[name]
    out: dict[str, np.ndarray] = {}
    for i, (split, n) in enumerate((sizes or SPLITS).items()):
        rng = np.random.default_rng([seed, i, sum(map(ord, name))])
        labels = np.arange(n) % classes
        rng.shuffle(labels)
        out[f"x_{split}"] = np.stack([draw(int(y), rng) for y in labels])
        out[f"y_{split}"] = labels.astype(np.int64)
    return out


def ensure(name: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Write ``out_dir/name.npz`` unless it is already there; return its path."""
    path = Path(out_dir) / f"{name}-s{seed}.npz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **generate(name, seed))
        tmp.replace(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="directory for the .npz files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preview", action="store_true", help="also write a PNG grid per dataset")
    args = ap.parse_args()
    for name in DATASETS:
        path = ensure(name, args.out, args.seed)
        print(f"{path}")
        if args.preview:
            with np.load(path) as z:
                x = z["x_train"][:64]
            grid = x.reshape(8, 8, LO, LO, 3).transpose(0, 2, 1, 3, 4).reshape(8 * LO, 8 * LO, 3)
            Image.fromarray(grid).resize((512, 512), Image.NEAREST).save(path.with_suffix(".png"))


if __name__ == "__main__":
    main()
