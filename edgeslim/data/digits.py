"""scikit-learn's handwritten digits (UCI optdigits test set) as a tiny 32x32 RGB dataset.

The 1797 8x8 images (values 0..16) ship inside the scikit-learn wheel, so this works
offline. They are upsampled bilinearly to 32x32, replicated to 3 channels and split
70/15/15 into train/val/test, stratified by class with a fixed seed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgeslim.core.errors import EdgeslimError
from edgeslim.data.arrays import ArrayDataset
from edgeslim.data.registry import DATASETS, SPLITS, DatasetInfo, DataSource

SEED = 0
FRACTIONS = {"train": 0.70, "val": 0.15, "test": 0.15}
# Per-channel statistics of the 32x32 images after /255 (all 1797, measured once).
MEAN = (0.3052,) * 3
STD = (0.3236,) * 3
CLASS_NAMES = tuple(str(d) for d in range(10))


def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 8x8 images (0..16) and labels, read from scikit-learn's data file.

    Reading ``digits.csv.gz`` directly (what ``load_digits`` does) skips importing
    scikit-learn, which takes seconds; ``load_digits`` is the fallback.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise EdgeslimError("the 'digits' dataset needs scikit-learn installed")
    csv = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if csv.is_file():
        table = np.loadtxt(csv, delimiter=",")
        return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits  # the file moved upstream: take the slow road

    bunch = load_digits()
    return bunch.images, bunch.target.astype(np.int64)


def _images() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as uint8 ``N,32,32,3`` plus int64 labels."""
    raw, labels = _raw_digits()
    small = torch.from_numpy(raw.astype(np.float32) * (255.0 / 16.0))[:, None]
    big = F.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False)
    gray = big.clamp(0, 255).round().to(torch.uint8).numpy()[:, 0]
    return np.repeat(gray[..., None], 3, axis=-1), labels


def split_indices(labels: np.ndarray, seed: int = SEED) -> dict[str, np.ndarray]:
    """Stratified, seeded, disjoint index sets for every split (sorted)."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = round(len(idx) * FRACTIONS["val"])
        n_test = round(len(idx) * FRACTIONS["test"])
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    return {s: np.sort(np.concatenate(p)) for s, p in parts.items()}


def _load(arg: str, split: str, augment: bool) -> ArrayDataset:
    _no_arg(arg)
    images, labels = _images()
    idx = split_indices(labels)[split]
    # No flip: a mirrored 2, 3, 7... is not the same digit.
    return ArrayDataset(images[idx], labels[idx], MEAN, STD, augment=augment and split == "train")


def _info(arg: str) -> DatasetInfo:
    _no_arg(arg)
    return DatasetInfo(10, (3, 32, 32), CLASS_NAMES)


def _no_arg(arg: str) -> None:
    if arg:
        raise EdgeslimError(f"dataset 'digits' takes no argument, got {arg!r}")


DATASETS.register("digits", DataSource(load=_load, info=_info))
