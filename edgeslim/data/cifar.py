"""CIFAR-10 and CIFAR-100 from their binary releases (Krizhevsky, 2009).

``cifar10:DIR`` reads ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``
(records of 1 label byte + 3072 pixel bytes); ``cifar100:DIR`` reads ``train.bin`` and
``test.bin`` (2 label bytes, coarse then fine, + 3072 pixel bytes; the fine label is used).
Pixels are stored channel-major: 1024 red, then 1024 green, then 1024 blue, row-major.
DIR may be the extracted folder itself or its parent. The python (pickle) release is never
read. The last 5000 training images form the val split; train keeps the first 45000.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeslim.core.errors import EdgeslimError
from edgeslim.data.arrays import ArrayDataset
from edgeslim.data.registry import DATASETS, DatasetInfo, DataSource

PIXELS = 3 * 32 * 32
VAL_SIZE = 5000
# The customary per-channel statistics of the CIFAR training sets after /255.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def read_records(path: Path, label_bytes: int, label_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one ``.bin`` file into uint8 ``N,32,32,3`` images and int64 labels.

    ``label_bytes`` leading bytes per record; the label is byte ``label_index`` of them.
    """
    if not path.is_file():
        raise EdgeslimError(f"missing CIFAR file {path}")
    record = label_bytes + PIXELS
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % record:
        raise EdgeslimError(
            f"truncated or corrupt CIFAR file {path}: {raw.size} bytes is not a multiple "
            f"of the {record}-byte record"
        )
    rows = raw.reshape(-1, record)
    labels = rows[:, label_index].astype(np.int64)
    classes = 10 if label_bytes == 1 else 100
    if int(labels.max()) >= classes:  # e.g. a CIFAR-100 file read as CIFAR-10
        raise EdgeslimError(
            f"corrupt CIFAR file {path}: label {int(labels.max())} is not one of {classes} classes"
        )
    images = rows[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _find_dir(arg: str, release: str, first_file: str) -> Path:
    """The directory holding the ``.bin`` files: ``arg`` itself or ``arg/release``."""
    root = Path(arg).expanduser()
    for d in (root, root / release):
        if (d / first_file).is_file():
            return d
    if not root.exists():
        raise EdgeslimError(f"CIFAR directory {root} does not exist")
    return root / release if (root / release).is_dir() else root


def _split(images: np.ndarray, labels: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Carve val (last ``VAL_SIZE``) out of the training set; test passes through."""
    if split == "test":
        return images, labels
    if len(labels) <= VAL_SIZE:
        raise EdgeslimError(f"CIFAR training set has {len(labels)} images, need > {VAL_SIZE}")
    cut = len(labels) - VAL_SIZE
    return (images[:cut], labels[:cut]) if split == "train" else (images[cut:], labels[cut:])


def load_cifar10_split(arg: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of one CIFAR-10 split from the binary release in ``arg``."""
    d = _find_dir(arg, "cifar-10-batches-bin", "test_batch.bin")
    if split == "test":
        return read_records(d / "test_batch.bin", 1, 0)
    parts = [read_records(d / f"data_batch_{i}.bin", 1, 0) for i in range(1, 6)]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return _split(images, labels, split)


def load_cifar100_split(arg: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images, fine labels)`` of one CIFAR-100 split from the binary release in ``arg``."""
    d = _find_dir(arg, "cifar-100-binary", "test.bin")
    name = "test.bin" if split == "test" else "train.bin"
    return _split(*read_records(d / name, 2, 1), split)


def _cifar100_names(arg: str) -> tuple[str, ...]:
    """Fine class names from ``fine_label_names.txt`` when present, else ``class_<i>``."""
    d = _find_dir(arg, "cifar-100-binary", "test.bin")
    names_file = d / "fine_label_names.txt"
    if names_file.is_file():
        names = tuple(n.strip() for n in names_file.read_text().splitlines() if n.strip())
        if len(names) == 100:
            return names
    return tuple(f"class_{i}" for i in range(100))


def _load10(arg: str, split: str, augment: bool) -> ArrayDataset:
    images, labels = load_cifar10_split(arg, split)
    aug = augment and split == "train"
    return ArrayDataset(images, labels, CIFAR10_MEAN, CIFAR10_STD, augment=aug, flip=aug)


def _load100(arg: str, split: str, augment: bool) -> ArrayDataset:
    images, labels = load_cifar100_split(arg, split)
    aug = augment and split == "train"
    return ArrayDataset(images, labels, CIFAR100_MEAN, CIFAR100_STD, augment=aug, flip=aug)


def _info10(arg: str) -> DatasetInfo:
    return DatasetInfo(10, (3, 32, 32), CIFAR10_CLASSES)


def _info100(arg: str) -> DatasetInfo:
    return DatasetInfo(100, (3, 32, 32), _cifar100_names(arg))


DATASETS.register("cifar10", DataSource(load=_load10, info=_info10, needs_arg=True))
DATASETS.register("cifar100", DataSource(load=_load100, info=_info100, needs_arg=True))
