"""``shapes_seg``: generated scenes of shapes with per-pixel class masks (a segmentation toy).

Each 32x32 RGB scene has a noisy, tinted background and 1 to 3 filled shapes
(disc, square, triangle) of random size, position and colour; later shapes
occlude earlier ones. The mask gives every pixel its class: 0 background,
1 disc, 2 square, 3 triangle. Colour says nothing about the class, so a model
must use shape. Splits are generated in memory from per-split seeds (train 512,
val 128, test 128), deterministically; nothing is downloaded.

The dataset declares the ``segmentation`` task: samples are
``(float32 image 3,32,32 normalized, int64 mask 32,32)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from edgeslim.core.errors import EdgeslimError
from edgeslim.data.registry import DATASETS, SPLITS, DatasetInfo, DataSource

VERSION = "shapes_seg-v1"
SIZE = 32
CLASS_NAMES = ("background", "disc", "square", "triangle")
SIZES = {"train": 512, "val": 128, "test": 128}
MEAN, STD = 0.5, 0.25  # images are in [0, 1]; a fixed affine map is enough for a toy


def _shape_mask(kind: int, cy: float, cx: float, r: float) -> np.ndarray:
    """Boolean ``SIZE x SIZE`` mask of one shape centred at ``(cy, cx)`` with radius ``r``."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    dy, dx = yy - cy, xx - cx
    if kind == 1:  # disc
        return dy**2 + dx**2 <= r**2
    if kind == 2:  # axis-aligned square of half-side r * 0.85 (same area order as the disc)
        h = 0.85 * r
        return (np.abs(dy) <= h) & (np.abs(dx) <= h)
    # upward triangle: apex at cy - r, base at cy + r, half-width at the base r
    inside_y = (dy >= -r) & (dy <= r)
    half = (dy + r) / 2.0  # widens linearly from 0 at the apex to r at the base
    return inside_y & (np.abs(dx) <= half)


def generate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scenes as float32 ``N,3,32,32`` in [0, 1] and int64 masks ``N,32,32``.

    Example:
        >>> x, m = generate(2, 0)
        >>> x.shape, m.shape, int(m.max()) <= 3
        ((2, 3, 32, 32), (2, 32, 32), True)
    """
    rng = np.random.default_rng(seed)
    images = np.empty((n, 3, SIZE, SIZE), np.float32)
    masks = np.zeros((n, SIZE, SIZE), np.int64)
    for i in range(n):
        tint = rng.uniform(0.2, 0.8, size=(3, 1, 1))
        img = tint + rng.normal(0.0, 0.08, size=(3, SIZE, SIZE))
        for _ in range(int(rng.integers(1, 4))):
            kind = int(rng.integers(1, 4))
            r = float(rng.uniform(4.0, 9.0))
            cy, cx = rng.uniform(r, SIZE - r, size=2)
            m = _shape_mask(kind, cy, cx, r)
            colour = rng.uniform(0.0, 1.0, size=(3, 1))
            img[:, m] = colour + rng.normal(0.0, 0.05, size=(3, int(m.sum())))
            masks[i][m] = kind
        images[i] = np.clip(img, 0.0, 1.0)
    return images, masks


class SegmentationDataset(Dataset):
    """``(normalized float image C,H,W, int64 mask H,W)`` samples from in-memory arrays."""

    def __init__(self, images: np.ndarray, masks: np.ndarray) -> None:
        self.images = torch.from_numpy((images - MEAN) / STD)
        self.masks = torch.from_numpy(masks)

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i], self.masks[i]


def _no_arg(arg: str) -> None:
    if arg:
        raise EdgeslimError(f"dataset 'shapes_seg' takes no argument, got {arg!r}")


def _load(arg: str, split: str, augment: bool) -> SegmentationDataset:
    _no_arg(arg)  # no augmentation: a crop or flip would have to move the mask too
    return SegmentationDataset(*generate(SIZES[split], seed=2000 + SPLITS.index(split)))


def _info(arg: str) -> DatasetInfo:
    _no_arg(arg)
    return DatasetInfo(
        len(CLASS_NAMES), (3, SIZE, SIZE), CLASS_NAMES, version=VERSION, task="segmentation"
    )


DATASETS.register("shapes_seg", DataSource(load=_load, info=_info))
