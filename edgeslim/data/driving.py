"""``driving``: generated road scenes with boxes, a detection benchmark built in.

Each 256x256 RGB image (by default) is a road in perspective (2-4 lanes with dashed
marks, kerbs, a horizon that moves and a road that bends) with roadside clutter (poles,
trees, buildings), under day, dusk or night light, sometimes fog or rain, always
sensor noise. On it stand 3-12 objects of six classes, KITTI's names where KITTI has
the class: ``Car``, ``Truck``, ``Pedestrian``, ``Cyclist``, plus ``TrafficSign`` and
``TrafficLight``. Their size follows their depth (a pinhole camera 1.6 m above flat
ground), nearer ones occlude farther ones, and those at the border are truncated;
:mod:`edgeslim.data.driving_render` has the geometry and the labelling rules.

Samples are ``(float32 image 3,H,W in [0, 1], float32 (M, 5) rows [class, x1, y1,
x2, y2] in pixels, padded with class -1)``; the dataset declares the ``detection`` task.
Generation is deterministic by seed: train, val and test come from three seeds derived
from one base seed, and each split is cached as a memory-mapped ``.npy`` under
``$EDGESLIM_CACHE`` (default ``~/.cache/edgeslim``), keyed by :data:`VERSION`.

Spec options, comma-separated: ``driving:seed=1,n=64,size=128`` (``n``: train images;
val and test get ``n // 8``, at least 8).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeslim.core.atomic import atomic_path
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.paths import cache_dir
from edgeslim.data.detection import DetectionDataset, pad_boxes
from edgeslim.data.driving_render import SceneStyle, render_scene
from edgeslim.data.registry import DATASETS, SPLITS, DatasetInfo, DataSource

VERSION = "driving-v1"  # bump whenever the renderer changes: it keys the cache
CLASS_NAMES = ("Car", "Truck", "Pedestrian", "Cyclist", "TrafficSign", "TrafficLight")
MAX_BOXES = 16  # rows per sample: more than the renderer's 12 objects


@dataclass(frozen=True)
class DrivingOptions:
    """What a ``driving`` spec selects: base seed, train size and image side (px)."""

    seed: int = 0
    n: int = 2000
    size: int = 256

    def count(self, split: str) -> int:
        return self.n if split == "train" else max(self.n // 8, 8)


def generate_driving(
    n: int, seed: int = 0, size: int = 256, style: SceneStyle | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` scenes, deterministically for a given ``seed``.

    Returns:
        ``(images, boxes)``: uint8 ``N,size,size,3`` and float32 ``(N, 16, 5)`` rows
        ``[class, x1, y1, x2, y2]`` padded with class -1.

    Example:
        >>> x, b = generate_driving(2, seed=1, size=64)
        >>> x.shape, b.shape
        ((2, 64, 64, 3), (2, 16, 5))
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    style = style or SceneStyle()
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), np.uint8)
    rows = []
    for i in range(n):
        images[i], b = render_scene(rng, (size, size), style)
        rows.append(b)
    return images, pad_boxes(rows, MAX_BOXES)


def split_seed(seed: int, split: str) -> int:
    """The generator seed of ``split``: distinct streams for train, val and test."""
    return int(np.random.SeedSequence([seed, 12, SPLITS.index(split)]).generate_state(1)[0])


def _cache_stem(opt: DrivingOptions, split: str) -> Path:
    name = f"{VERSION}-seed{opt.seed}-s{opt.size}-{split}{opt.count(split)}"
    return cache_dir("driving") / name


def load_driving_split(split: str, opt: DrivingOptions) -> tuple[np.ndarray, np.ndarray]:
    """``(images, boxes)`` of one split: memory-mapped from the cache, rendered on first use."""
    stem = _cache_stem(opt, split)
    img_path, box_path = stem.with_suffix(".img.npy"), stem.with_suffix(".box.npy")
    try:
        images = np.load(img_path, mmap_mode="r", allow_pickle=False)
        boxes = np.load(box_path, allow_pickle=False)
        if len(images) == len(boxes) == opt.count(split):
            return images, boxes
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        warnings.warn(f"ignoring unreadable cache {stem}; regenerating", stacklevel=2)
    images, boxes = generate_driving(opt.count(split), split_seed(opt.seed, split), opt.size)
    try:  # boxes last: a complete box file marks a complete pair
        for path, arr in ((img_path, images), (box_path, boxes)):
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.save(f, arr)
    except OSError as exc:  # a read-only cache must not stop training
        warnings.warn(f"could not cache driving scenes at {stem}: {exc}", stacklevel=2)
    return images, boxes


def parse_options(arg: str) -> DrivingOptions:
    """``"seed=1,n=64,size=128"`` -> :class:`DrivingOptions` (empty: the defaults)."""
    values: dict[str, int] = {}
    for part in filter(None, arg.split(",")):
        key, _, value = part.partition("=")
        if key not in ("seed", "n", "size") or not value.lstrip("-").isdigit():
            raise EdgeslimError(
                f"bad driving option {part!r}; use e.g. 'driving:seed=1,n=500,size=256'"
            )
        values[key] = int(value)
    opt = DrivingOptions(**values)
    if opt.n < 1 or opt.size < 32 or opt.size % 32:
        raise EdgeslimError(
            f"driving needs n >= 1 and a size that is a multiple of 32 (>= 32), got {arg!r}"
        )
    return opt


def _load(arg: str, split: str, augment: bool | str) -> DetectionDataset:
    images, boxes = load_driving_split(split, parse_options(arg))
    return DetectionDataset(images, boxes, augment=augment if split == "train" else False)


def _info(arg: str) -> DatasetInfo:
    opt = parse_options(arg)
    return DatasetInfo(
        len(CLASS_NAMES), (3, opt.size, opt.size), CLASS_NAMES, version=VERSION, task="detection"
    )


DATASETS.register("driving", DataSource(load=_load, info=_info))
