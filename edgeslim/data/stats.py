"""Per-channel normalization statistics, computed from a training split in one streaming pass.

A model trained on ``(x - mean) / std`` must see the same ``mean`` and ``std`` at
evaluation, export and deployment, so the statistics travel with the saved model
(``meta["normalization"]`` of the manifest, see :func:`Normalization.to_meta`).

The pass keeps only per-channel float64 sums, so memory is bounded by one chunk of
images whatever the dataset size; the population standard deviation is
``sqrt(E[x^2] - E[x]^2)`` over every pixel of the split (values scaled to [0, 1]).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from edgeslim.core.errors import EdgeslimError

META_KEY = "normalization"
MIN_STD = 1e-3  # a constant channel would otherwise divide by zero


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``mean`` and ``std`` of images scaled to [0, 1] (one value per channel).

    Example:
        >>> n = Normalization((0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
        >>> Normalization.from_meta({META_KEY: n.to_meta()}) == n  # a saved model's meta
        True
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise EdgeslimError(f"normalization needs one mean and one std per channel: {self}")
        if not all(math.isfinite(v) for v in (*self.mean, *self.std)):
            raise EdgeslimError(f"normalization statistics must be finite: {self}")
        if any(s <= 0 for s in self.std):
            raise EdgeslimError(f"normalization std must be > 0: {self}")

    def to_meta(self) -> dict[str, list[float]]:
        """The JSON form stored in a saved model's ``meta``."""
        return {"mean": list(self.mean), "std": list(self.std)}

    @staticmethod
    def from_meta(meta: Mapping) -> Normalization | None:
        """The statistics a saved model's ``meta`` holds, or None when it holds none."""
        d = meta.get(META_KEY)
        if d is None:
            return None
        try:
            return Normalization(tuple(map(float, d["mean"])), tuple(map(float, d["std"])))
        except (KeyError, TypeError, ValueError) as e:
            raise EdgeslimError(f"bad {META_KEY!r} in the model's metadata: {d!r} ({e})") from None


def channel_stats(chunks: Iterable[np.ndarray]) -> Normalization:
    """Mean and std per channel over ``N,H,W,C`` chunks (``uint8`` is scaled by 1/255).

    Example:
        >>> x = np.zeros((4, 2, 2, 3), np.uint8); x[:2] = 255
        >>> channel_stats([x[:3], x[3:]]).mean
        (0.5, 0.5, 0.5)
    """
    total = total_sq = None
    count = 0
    for chunk in chunks:
        if chunk.ndim != 4:
            raise EdgeslimError(f"expected image chunks N,H,W,C, got shape {chunk.shape}")
        x = chunk.astype(np.float64)
        if chunk.dtype == np.uint8:
            x /= 255.0
        flat = x.reshape(-1, x.shape[-1])
        s, sq = flat.sum(axis=0), np.square(flat).sum(axis=0)
        if total is None:
            total, total_sq = s, sq
        elif len(s) != len(total):
            raise EdgeslimError(f"chunks disagree on the channel count: {len(total)} vs {len(s)}")
        else:
            total, total_sq = total + s, total_sq + sq
        count += flat.shape[0]
    if total is None or count == 0:
        raise EdgeslimError("cannot compute normalization statistics of an empty split")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return Normalization(
        tuple(round(float(m), 6) for m in mean),
        tuple(round(max(float(s), MIN_STD), 6) for s in std),
    )
