"""Random inputs for latency and calibration plumbing only: ``random:C,H,W``.

Yields 256 standard-normal samples of shape ``C,H,W`` with label 0, drawn from a fixed
seed per split. Accuracy on it means nothing, so loading it warns. ``dataset_info``
reports 10 classes so that a default classifier head can be built for it.
"""

from __future__ import annotations

import warnings

import numpy as np

from edgeslim.core.errors import EdgeslimError
from edgeslim.data.arrays import ArrayDataset
from edgeslim.data.registry import DATASETS, SPLITS, DatasetInfo, DataSource

SIZE = 256  # samples per split
NUM_CLASSES = 10


def parse_shape(arg: str) -> tuple[int, int, int]:
    """``"3,32,32"`` -> ``(3, 32, 32)``, with a clear error on anything else."""
    parts = [p.strip() for p in arg.replace("x", ",").split(",")]
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise EdgeslimError(f"bad random shape {arg!r}; use 'random:C,H,W', e.g. random:3,32,32")
    c, h, w = (int(p) for p in parts)
    return c, h, w


def _load(arg: str, split: str, augment: bool) -> ArrayDataset:
    c, h, w = parse_shape(arg)
    warnings.warn(
        "dataset 'random' is noise with label 0, not real data: use it for latency or "
        "plumbing only, never to judge accuracy",
        stacklevel=3,  # point at the caller of load_dataset
    )
    rng = np.random.default_rng([SPLITS.index(split), c, h, w])
    x = rng.standard_normal((SIZE, h, w, c), dtype=np.float32)
    return ArrayDataset(x, np.zeros(SIZE, dtype=np.int64), (0.0,) * c, (1.0,) * c)


def _info(arg: str) -> DatasetInfo:
    return DatasetInfo(NUM_CLASSES, parse_shape(arg))


DATASETS.register("random", DataSource(load=_load, info=_info, needs_arg=True))
