"""Arrays you prepared yourself: ``npz:FILE`` with ``x_<split>`` and ``y_<split>``.

``x`` may be ``N,C,H,W``, ``N,H,W,C`` (C of 1, 3 or 4 picks the layout; channels-first wins
a tie) or ``N,H,W`` (one channel). ``uint8`` images are scaled by 1/255 and normalized with
the per-channel mean and std of ``x_train`` (one streaming pass over the file, see
:func:`npz_normalization`), the same statistics for every split; float images are taken as
already normalized. The val arrays are optional: asking for the val split of a file
without them is an error. The file is read with ``allow_pickle=False``.
"""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgeslim.core.errors import EdgeslimError
from edgeslim.data.arrays import ArrayDataset
from edgeslim.data.registry import DATASETS, DatasetInfo, DataSource
from edgeslim.data.stats import Normalization, channel_stats

_CHANNELS = (1, 3, 4)
CHUNK_BYTES = 16 << 20  # bytes of images held at once while computing statistics


def _open(arg: str) -> np.lib.npyio.NpzFile:
    path = Path(arg).expanduser()
    if not path.is_file():
        raise EdgeslimError(f"npz file {path} does not exist")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise EdgeslimError(f"cannot read {path} as .npz: {exc}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):  # a bare .npy: np.load returns the array
        raise EdgeslimError(f"{path} is a single .npy array, not an .npz with x_/y_ arrays")
    return z


def _read(z: np.lib.npyio.NpzFile, key: str, arg: str) -> np.ndarray:
    """Array ``key`` of the open file; a damaged or pickled member is a clear error."""
    try:
        return z[key]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EdgeslimError(f"cannot read {key} from {arg}: {why}") from None


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
        x, y = _read(z, keys[0], arg), _read(z, keys[1], arg)
    if x.ndim < 3:
        raise EdgeslimError(f"{keys[0]} in {arg} must be images N,H,W[,C], got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise EdgeslimError(f"{keys[0]} must be numeric, got dtype {x.dtype}")
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise EdgeslimError(f"{keys[0]} must be uint8 or float, got dtype {x.dtype}")
    y = np.asarray(y).reshape(-1)
    if not np.issubdtype(y.dtype, np.integer):
        raise EdgeslimError(f"{keys[1]} must hold integer class labels, got dtype {y.dtype}")
    if len(y) != len(x):
        raise EdgeslimError(f"{keys[0]} has {len(x)} images but {keys[1]} has {len(y)} labels")
    if y.size and int(y.min()) < 0:
        raise EdgeslimError(f"{keys[1]} in {arg} holds negative class labels ({int(y.min())})")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise EdgeslimError(f"{keys[0]} in {arg} holds {bad} NaN or Inf values")
    x = to_nhwc(x)
    return (x if x.dtype == np.uint8 else x.astype(np.float32)), y.astype(np.int64)


def iter_npz_rows(arg: str, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
    """Array ``key`` of the file ``arg`` in row chunks, read without loading it whole.

    Works for compressed and stored members alike: the ``.npy`` header is parsed from
    the zip stream and rows are read ``chunk_bytes`` at a time.
    """
    path = Path(arg).expanduser()
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise EdgeslimError(f"cannot read {path} as .npz: {exc}") from exc
    with zf, zf.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(f)
        if dtype.hasobject:
            raise EdgeslimError(f"{key} in {path} holds Python objects; refusing to unpickle")
        if fortran or not shape:  # rare: fall back to one read of the whole array
            yield np.load(path, allow_pickle=False)[key]
            return
        row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        per_chunk = max(1, chunk_bytes // max(row, 1))
        for start in range(0, shape[0], per_chunk):
            n = min(per_chunk, shape[0] - start)
            buf = f.read(n * row)
            if len(buf) != n * row:
                raise EdgeslimError(f"{key} in {path} is truncated")
            yield np.frombuffer(buf, dtype=dtype).reshape(n, *shape[1:])


def npz_normalization(arg: str) -> Normalization | None:
    """Per-channel statistics of ``x_train`` in ``arg`` (None for float images).

    Computed once per file version (path, size and modification time) in a process.

    Example:
        >>> # npz_normalization("letters.npz").mean   -> (0.47, 0.45, 0.41)
    """
    path = Path(arg).expanduser().resolve()
    if not path.is_file():
        raise EdgeslimError(f"npz file {path} does not exist")
    st = path.stat()
    return _cached_stats(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _cached_stats(path: str, size: int, mtime_ns: int) -> Normalization | None:
    with _open(path) as z:
        if "x_train" not in z.files:
            raise EdgeslimError(f"{path} has no x_train to compute normalization statistics from")
    chunks = iter_npz_rows(path, "x_train")
    first = next(chunks, None)
    if first is None:
        raise EdgeslimError(f"x_train in {path} is empty")
    if first.dtype != np.uint8:
        return None  # floats are taken as already normalized
    return channel_stats(to_nhwc(c) for c in _chain(first, chunks))


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _load(arg: str, split: str, augment: bool) -> ArrayDataset:
    x, y = load_npz_split(arg, split)
    c = x.shape[-1]
    norm = npz_normalization(arg) if x.dtype == np.uint8 else None
    mean, std = (norm.mean, norm.std) if norm else ((0.0,) * c, (1.0,) * c)
    # Crop only: a flip is not safe for data we know nothing about.
    return ArrayDataset(x, y, mean, std, augment=augment and split == "train")


def _info(arg: str) -> DatasetInfo:
    with _open(arg) as z:
        if "x_train" not in z.files or "y_train" not in z.files:
            raise EdgeslimError(f"{arg} needs arrays x_train and y_train")
        x = _read(z, "x_train", arg)
        if x.ndim < 3:
            raise EdgeslimError(f"x_train in {arg} must be images N,H,W[,C], got {x.shape}")
        shape = to_nhwc(x[:1]).shape
        ys = [_read(z, k, arg) for k in z.files if k.startswith("y_")]
    if any(not np.issubdtype(y.dtype, np.integer) for y in ys):
        raise EdgeslimError(f"{arg}: class labels y_* must be integers")
    num_classes = max((int(np.max(y)) for y in ys if np.size(y)), default=0) + 1
    return DatasetInfo(num_classes, (shape[3], shape[1], shape[2]))


DATASETS.register(
    "npz", DataSource(load=_load, info=_info, needs_arg=True, normalization=npz_normalization)
)
