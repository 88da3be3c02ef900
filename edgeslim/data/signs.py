"""Synthetic traffic signs: a procedurally generated 16-class, 32x32 RGB benchmark.

Each image is one sign (shape x rim/fill colour x pictogram) under a random pose (rotation,
scale, perspective squash and shear, translation, sometimes pushed partly off the frame)
on a cluttered background (gradients, low-frequency texture, stripes, random shapes, sign
posts, sign-like distractor blobs), then degraded: colour fading and white balance, uneven
lighting, occluding patches, brightness/contrast, blur and sensor noise. Signs are rendered
as signed-distance masks on a 64x64 grid and averaged down 2x2, for anti-aliased edges.

Several classes differ only in one feature (3/5/8 digits, left/right arrows, circle vs
octagon, rim vs filled), so the task needs real features: a CIFAR ResNet-20 trained from
scratch for 8 epochs (SGD, cosine lr 0.1, random crops) reaches about 91% test accuracy,
which leaves room for pruning and low-bit quantization to show damage.

Generation is deterministic by seed; the registered ``signs`` dataset draws its train/val/
test splits from three seeds derived from one base seed, so they never overlap, and caches
them as ``.npz`` under ``$EDGESLIM_CACHE`` (default ``~/.cache/edgeslim``).
The design follows GTSRB (Stallkamp et al., 2012, "Man vs. computer: Benchmarking machine
learning algorithms for traffic sign recognition") in spirit, without any of its images.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeslim.core.atomic import atomic_path
from edgeslim.core.errors import EdgeslimError
from edgeslim.data.arrays import ArrayDataset
from edgeslim.data.registry import DATASETS, SPLITS, DatasetInfo, DataSource
from edgeslim.data.signs_render import SignStyle, render_signs

VERSION = "signs-v1"  # bump whenever the generator changes: it keys the cache
SIZES = {"train": 10000, "val": 2000, "test": 2000}
_CHUNK = 500  # images rendered per vectorised batch (bounds peak memory to ~100 MB)

# Per-channel statistics of the default train split (seed 0), measured once after /255.
MEAN = (0.4764, 0.4474, 0.4588)
STD = (0.2350, 0.2287, 0.2299)


@dataclass(frozen=True)
class SignClass:
    """One sign class: outline, colours and pictogram."""

    name: str
    shape: str  # circle, triangle, triangle_down, octagon, diamond, square
    rim: str  # colour of the rim ("" = no rim, the fill reaches the edge)
    fill: str
    glyph: str  # pictogram name ("" = none)
    ink: str = "black"  # pictogram colour


_CLASSES = (
    SignClass("speed_limit_30", "circle", "red", "white", "3"),
    SignClass("speed_limit_50", "circle", "red", "white", "5"),
    SignClass("speed_limit_80", "circle", "red", "white", "8"),
    SignClass("no_vehicles", "circle", "red", "white", ""),
    SignClass("no_entry", "circle", "", "red", "bar", "white"),
    SignClass("stop", "octagon", "white", "red", "text", "white"),
    SignClass("turn_left", "circle", "", "blue", "arrow_left", "white"),
    SignClass("turn_right", "circle", "", "blue", "arrow_right", "white"),
    SignClass("ahead_only", "circle", "", "blue", "arrow_up", "white"),
    SignClass("general_caution", "triangle", "red", "white", "exclamation"),
    SignClass("curve_left", "triangle", "red", "white", "arrow_left"),
    SignClass("curve_right", "triangle", "red", "white", "arrow_right"),
    SignClass("yield", "triangle_down", "red", "white", ""),
    SignClass("priority_road", "diamond", "white", "yellow", ""),
    SignClass("parking", "square", "", "blue", "P", "white"),
    SignClass("no_stopping", "circle", "red", "blue", "cross", "red"),
)
SIGN_CLASSES: tuple[str, ...] = tuple(c.name for c in _CLASSES)


def generate_signs(
    n: int, seed: int = 0, style: SignStyle | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` class-balanced signs, deterministically for a given ``seed``.

    Returns:
        ``(images, labels)``: uint8 ``N,32,32,3`` and int64 ``N`` indexing :data:`SIGN_CLASSES`.

    Example:
        >>> x, y = generate_signs(32, seed=1)
        >>> x.shape, x.dtype, int(y.max()) < len(SIGN_CLASSES)
        ((32, 32, 32, 3), dtype('uint8'), True)
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    style = style or SignStyle()
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n, dtype=np.int64) % len(_CLASSES))
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        images[start:stop] = render_signs(_CLASSES, labels[start:stop], rng, style)
    return images, labels


def split_seed(seed: int, split: str) -> int:
    """The generator seed of ``split``: distinct streams for train, val and test."""
    return int(np.random.SeedSequence([seed, SPLITS.index(split)]).generate_state(1)[0])


def _cache_path(seed: int) -> Path:
    root = Path(os.environ.get("EDGESLIM_CACHE") or Path.home() / ".cache" / "edgeslim")
    sizes = "-".join(str(SIZES[s]) for s in SPLITS)
    return root / f"{VERSION}-seed{seed}-{sizes}.npz"


def load_signs_split(split: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of one split, generated on first use and cached on disk."""
    path = _cache_path(seed)
    try:
        with np.load(path, allow_pickle=False) as z:
            return z[f"x_{split}"], z[f"y_{split}"]
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        warnings.warn(f"ignoring unreadable cache {path}; regenerating", stacklevel=2)
    arrays: dict[str, np.ndarray] = {}
    for s in SPLITS:
        arrays[f"x_{s}"], arrays[f"y_{s}"] = generate_signs(SIZES[s], split_seed(seed, s))
    try:
        with atomic_path(path) as tmp:
            np.savez(tmp, **arrays)
    except OSError as exc:  # a read-only home must not stop training
        warnings.warn(f"could not cache signs at {path}: {exc}", stacklevel=2)
    return arrays[f"x_{split}"], arrays[f"y_{split}"]


def _parse_seed(arg: str) -> int:
    if not arg:
        return 0
    key, _, value = arg.partition("=")
    if key != "seed" or not value.lstrip("-").isdigit():
        raise EdgeslimError(f"bad signs option {arg!r}; use 'signs' or 'signs:seed=N'")
    return int(value)


def _load(arg: str, split: str, augment: bool) -> ArrayDataset:
    images, labels = load_signs_split(split, _parse_seed(arg))
    # No horizontal flip: it would turn a left arrow into a right one.
    return ArrayDataset(images, labels, MEAN, STD, augment=augment and split == "train")


def _info(arg: str) -> DatasetInfo:
    _parse_seed(arg)
    return DatasetInfo(len(SIGN_CLASSES), (3, 32, 32), SIGN_CLASSES, version=VERSION)


DATASETS.register("signs", DataSource(load=_load, info=_info))
