"""Arrays you prepared yourself: ``npz:FILE`` with ``x_<split>`` and ``y_<split>``.

``x`` may be ``N,C,H,W``, ``N,H,W,C`` (C of 1, 3 or 4 picks the layout; channels-first wins
a tie) or ``N,H,W`` (one channel). ``uint8`` images are scaled by 1/255 and normalized with
mean 0.5, std 0.25 per channel; float images are taken as already normalized. The val
arrays are optional: asking for the val split of a file without them is an error.
The file is read with ``allow_pickle=False``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeslim.core.errors import EdgeslimError
from edgeslim.data.arrays import ArrayDataset
from edgeslim.data.registry import DATASETS, DatasetInfo, DataSource

UINT8_MEAN, UINT8_STD = 0.5, 0.25
_CHANNELS = (1, 3, 4)


def _open(arg: str) -> np.lib.npyio.NpzFile:
    path = Path(arg).expanduser()
    if not path.is_file():
        raise EdgeslimError(f"npz file {path} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise EdgeslimError(f"cannot read {path} as .npz: {exc}") from exc


def to_nhwc(x: np.ndarray) -> np.ndarray:
    """``x`` in ``N,H,W,C`` layout, guessing the input layout from the channel count."""
    if x.ndim == 3:
        return x[..., None]
    if x.ndim != 4:
        raise EdgeslimError(f"expected images N,C,H,W or N,H,W,C, got shape {x.shape}")
    if x.shape[1] in _CHANNELS:
        return x.transpose(0, 2, 3, 1)
    if x.shape[-1] in _CHANNELS:
        return x
    raise EdgeslimError(f"cannot tell the channel axis of images of shape {x.shape}")


def load_npz_split(arg: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images N,H,W,C, int64 labels)`` of one split of the file ``arg``."""
    with _open(arg) as z:
        keys = (f"x_{split}", f"y_{split}")
        missing = [k for k in keys if k not in z.files]
        if missing:
            raise EdgeslimError(
                f"{arg} has no {' / '.join(missing)} (it holds: {', '.join(sorted(z.files))})"
            )
        x, y = z[keys[0]], z[keys[1]]
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise EdgeslimError(f"{keys[0]} must be numeric, got dtype {x.dtype}")
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise EdgeslimError(f"{keys[0]} must be uint8 or float, got dtype {x.dtype}")
    y = np.asarray(y).reshape(-1)
    if not np.issubdtype(y.dtype, np.integer):
        raise EdgeslimError(f"{keys[1]} must hold integer class labels, got dtype {y.dtype}")
    if len(y) != len(x):
        raise EdgeslimError(f"{keys[0]} has {len(x)} images but {keys[1]} has {len(y)} labels")
    x = to_nhwc(x)
    return (x if x.dtype == np.uint8 else x.astype(np.float32)), y.astype(np.int64)


def _load(arg: str, split: str, augment: bool) -> ArrayDataset:
    x, y = load_npz_split(arg, split)
    c = x.shape[-1]
    if x.dtype == np.uint8:
        mean, std = (UINT8_MEAN,) * c, (UINT8_STD,) * c
    else:
        mean, std = (0.0,) * c, (1.0,) * c
    # Crop only: a flip is not safe for data we know nothing about.
    return ArrayDataset(x, y, mean, std, augment=augment and split == "train")


def _info(arg: str) -> DatasetInfo:
    with _open(arg) as z:
        if "x_train" not in z.files or "y_train" not in z.files:
            raise EdgeslimError(f"{arg} needs arrays x_train and y_train")
        shape = to_nhwc(z["x_train"][:1]).shape
        ys = [z[k] for k in z.files if k.startswith("y_")]
    num_classes = max((int(np.max(y)) for y in ys if np.size(y)), default=0) + 1
    return DatasetInfo(num_classes, (shape[3], shape[1], shape[2]))


DATASETS.register("npz", DataSource(load=_load, info=_info, needs_arg=True))
