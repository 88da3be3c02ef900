"""Channel elements and their union-find: the exact bookkeeping under dependency groups.

Every channel of every tensor the model computes is an *element*: an integer id.
A tensor's channels are a numpy array of ids shaped like the tensor, with size 1
on axes along which the channels do not vary (``(1, C, 1, 1)`` for an NCHW map).
Ops tie elements together: an add unions index ``i`` of both operands, a concat
offsets, a flatten into a Linear repeats channel ``c`` over its ``H*W`` columns.
Two elements in one union-find component must be kept or removed together.

Elements that touch something edgeslim cannot shrink (the model input and
output, a constant, an op it does not understand) are *pinned*; a component
with a pinned element is never pruned.

This is the formulation of Fang et al., "DepGraph: Towards Any Structural
Pruning", CVPR 2023, taken down to single channel indices, which makes concat,
split, shuffle and flatten exact without special cases.
"""

from __future__ import annotations

import numpy as np


class Elements:
    """A growable union-find over channel element ids, with a pinned flag per root.

    Example:
        >>> e = Elements()
        >>> a, b = e.fresh(3), e.fresh(3)
        >>> e.union(a, b)
        >>> bool(e.find(a[0]) == e.find(b[0]))
        True
    """

    def __init__(self) -> None:
        self._parent: list[int] = []
        self._pinned: list[bool] = []

    def __len__(self) -> int:
        return len(self._parent)

    def fresh(self, n: int, pinned: bool = False) -> np.ndarray:
        """``n`` new element ids (a 1-D array)."""
        start = len(self._parent)
        self._parent.extend(range(start, start + n))
        self._pinned.extend([pinned] * n)
        return np.arange(start, start + n, dtype=np.int64)

    def find(self, x: int) -> int:
        parent = self._parent
        root = int(x)
        while parent[root] != root:
            root = parent[root]
        x = int(x)
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        """Union ``a[i]`` with ``b[i]`` for every ``i`` (arrays broadcast together)."""
        a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
        pairs = np.unique(np.stack([a.ravel(), b.ravel()], 1), axis=0)
        for x, y in pairs:
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self._parent[ry] = rx
                self._pinned[rx] = self._pinned[rx] or self._pinned[ry]

    def union_all(self, ids: np.ndarray) -> None:
        """Put every element of ``ids`` in one component."""
        flat = np.unique(np.asarray(ids).ravel())
        if flat.size > 1:
            self.union(flat[:1], flat[1:])

    def pin(self, ids: np.ndarray) -> None:
        for x in np.unique(np.asarray(ids).ravel()):
            self._pinned[self.find(x)] = True

    def is_pinned(self, x: int) -> bool:
        return self._pinned[self.find(x)]

    def roots(self, ids: np.ndarray) -> np.ndarray:
        """The component root of each id (same shape)."""
        ids = np.asarray(ids)
        return np.array([self.find(x) for x in ids.ravel()], dtype=np.int64).reshape(ids.shape)


def compress(ids: np.ndarray) -> np.ndarray:
    """Shrink to size 1 every axis along which ``ids`` is constant (keeps the rank)."""
    for ax in range(ids.ndim):
        if ids.shape[ax] > 1:
            first = np.take(ids, [0], axis=ax)
            if np.array_equal(np.broadcast_to(first, ids.shape), ids):
                ids = first
    return ids


def varying_axes(ids: np.ndarray) -> list[int]:
    """Axes along which channels differ (size > 1 in the compressed array)."""
    return [ax for ax, n in enumerate(ids.shape) if n > 1]


def reshape_ids(
    ids: np.ndarray, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> np.ndarray:
    """Follow a ``view``/``reshape`` of a tensor from ``in_shape`` to ``out_shape``."""
    full = np.broadcast_to(ids, in_shape)
    return compress(full.reshape(out_shape))
