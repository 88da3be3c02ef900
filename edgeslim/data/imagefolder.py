"""Your own images: ``imagefolder:DIR``, one sub-folder per class.

Two layouts are accepted:

- ``DIR/train/<class>/*``, ``DIR/val/<class>/*``, ``DIR/test/<class>/*``: the splits as given
  (the class list comes from ``train/``);
- ``DIR/<class>/*``: every class is split 80/10/10 into train/val/test with a fixed seed.

Every image is decoded with Pillow, converted to RGB and resized to 32x32 (bilinear), the
input size of the built-in small models. Every split is normalized with the per-channel
mean and std of the train split (one streaming pass, :func:`imagefolder_normalization`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgeslim.core.errors import EdgeslimError
from edgeslim.data.arrays import ArrayDataset
from edgeslim.data.registry import DATASETS, DatasetInfo, DataSource
from edgeslim.data.stats import Normalization, channel_stats

SIZE = 32  # px, every image is resized to SIZE x SIZE
SEED = 0
FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
CHUNK = 256  # images decoded at a time while computing statistics


def _root(arg: str) -> Path:
    root = Path(arg).expanduser()
    if not root.is_dir():
        raise EdgeslimError(f"imagefolder directory {root} does not exist")
    return root


def _has_splits(root: Path) -> bool:
    return (root / "train").is_dir()


def _class_dirs(folder: Path) -> list[Path]:
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise EdgeslimError(f"no class folders in {folder}: expected {folder}/<class>/<image>")
    return dirs


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)


def class_names(arg: str) -> tuple[str, ...]:
    """The sorted class folder names of ``imagefolder:arg``."""
    root = _root(arg)
    return tuple(d.name for d in _class_dirs(root / "train" if _has_splits(root) else root))


def list_split(arg: str, split: str) -> tuple[list[Path], np.ndarray]:
    """Image paths and labels of one split, in a deterministic order."""
    root = _root(arg)
    names = class_names(arg)
    index = {n: i for i, n in enumerate(names)}
    paths: list[Path] = []
    labels: list[int] = []
    if _has_splits(root):
        folder = root / split
        if not folder.is_dir():
            raise EdgeslimError(f"imagefolder {root} has train/ but no {split}/ folder")
        for d in _class_dirs(folder):
            if d.name not in index:
                raise EdgeslimError(f"class folder {d} is not among the train/ classes")
            files = _images_in(d)
            paths += files
            labels += [index[d.name]] * len(files)
    else:
        rng = np.random.default_rng(SEED)
        for d in _class_dirs(root):
            files = _images_in(d)
            order = rng.permutation(len(files))
            n_val = round(len(files) * FRACTIONS["val"])
            n_test = round(len(files) * FRACTIONS["test"])
            bounds = {"test": (0, n_test), "val": (n_test, n_test + n_val)}
            lo, hi = bounds.get(split, (n_test + n_val, len(files)))
            paths += [files[i] for i in order[lo:hi]]
            labels += [index[d.name]] * (hi - lo)
    if not paths:
        raise EdgeslimError(f"no images for split {split!r} in {root}")
    return paths, np.asarray(labels, dtype=np.int64)


def _decode(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise EdgeslimError(f"cannot read image {path}: {exc}") from exc


def imagefolder_normalization(arg: str) -> Normalization:
    """Per-channel statistics of the decoded train split, computed once per file listing.

    Example:
        >>> # imagefolder_normalization("photos/").std   -> (0.24, 0.23, 0.25)
    """
    paths, _ = list_split(arg, "train")
    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    return _cached_stats(key)


@functools.lru_cache(maxsize=8)
def _cached_stats(key: tuple[tuple[str, int, int], ...]) -> Normalization:
    return channel_stats(_decoded_chunks([Path(k[0]) for k in key]))


def _decoded_chunks(paths: list[Path]) -> Iterator[np.ndarray]:
    for i in range(0, len(paths), CHUNK):
        yield np.stack([_decode(p) for p in paths[i : i + CHUNK]])


def _load(arg: str, split: str, augment: bool) -> ArrayDataset:
    paths, labels = list_split(arg, split)
    images = np.stack([_decode(p) for p in paths])
    norm = imagefolder_normalization(arg)
    aug = augment and split == "train"
    return ArrayDataset(images, labels, norm.mean, norm.std, augment=aug, flip=aug)


def _info(arg: str) -> DatasetInfo:
    names = class_names(arg)
    return DatasetInfo(len(names), (3, SIZE, SIZE), names)


DATASETS.register(
    "imagefolder",
    DataSource(load=_load, info=_info, needs_arg=True, normalization=imagefolder_normalization),
)
