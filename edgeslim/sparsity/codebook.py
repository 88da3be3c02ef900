"""Weight sharing with a k-means codebook, as in Deep Compression (Han et al. 2016, §3).

The nonzero weights of one tensor are clustered into ``2^bits`` centroids with
Lloyd's algorithm from a *linear* initialisation (evenly spaced between the
smallest and largest weight: the paper found it keeps the rare large weights
that density-based initialisations lose). Each weight is then stored as the
``bits``-bit index of its nearest centroid; zeros stay exact (the archive's
bitmask), so the codebook only has to describe the survivors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from edgeslim.core.errors import EdgeslimError

ITERATIONS = 100  # 1-D Lloyd converges in far fewer; the loop stops at a fixed point


def kmeans_codebook(
    values: Tensor, bits: int, iterations: int = ITERATIONS
) -> tuple[Tensor, Tensor]:
    """``(codebook, indices)``: float32 centroids (``2^bits``) and each value's uint8 index.

    Example:
        >>> cb, idx = kmeans_codebook(torch.tensor([-1.0, -0.9, 0.5, 0.6]), bits=1)
        >>> cb.tolist(), idx.tolist()
        ([-0.949999988079071, 0.550000011920929], [0, 0, 1, 1])
    """
    if not 1 <= bits <= 8:
        raise EdgeslimError(f"codebook bits must be in 1..8, got {bits}")
    v = values.detach().double().reshape(-1)
    k = 2**bits
    if v.numel() == 0:
        return torch.zeros(k), torch.zeros(0, dtype=torch.uint8)
    centroids = torch.linspace(float(v.min()), float(v.max()), k, dtype=torch.float64)
    for _ in range(iterations):
        idx = _nearest(v, centroids)
        sums = torch.zeros(k, dtype=torch.float64).index_add_(0, idx, v)
        counts = torch.bincount(idx, minlength=k).double()
        new = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        if torch.equal(new, centroids):
            break
        centroids = new
    cb = centroids.float()
    return cb, _nearest(v.float(), cb).to(torch.uint8)


def _nearest(v: Tensor, centroids: Tensor) -> Tensor:
    """Index of the nearest centroid of each value (centroids sorted ascending; ties go low)."""
    mids = (centroids[1:] + centroids[:-1]) / 2
    return torch.bucketize(v, mids, right=True)


def pack_bits(indices: Tensor, bits: int) -> bytes:
    """``bits``-bit codes packed big-endian into bytes."""
    a = indices.numpy().astype(np.uint8).reshape(-1, 1)
    return np.packbits(np.unpackbits(a, axis=1)[:, 8 - bits :].reshape(-1)).tobytes()


def unpack_bits(buf: bytes, bits: int, count: int) -> Tensor:
    """Inverse of :func:`pack_bits` for ``count`` codes."""
    flat = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), count=count * bits)
    rows = np.zeros((count, 8), dtype=np.uint8)
    rows[:, 8 - bits :] = flat.reshape(count, bits)
    return torch.from_numpy(np.packbits(rows, axis=1).reshape(-1).astype(np.int64))
