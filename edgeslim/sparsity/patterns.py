"""3×3 kernel patterns under the adjacency constraint, and picking the best one per kernel.

R-TOSS (Balasubramaniam et al. 2023, "R-TOSS: A Framework for Real-Time Object
Detection using Semi-Structured Pruning") keeps ``k`` entries of each 3×3
kernel (3EP: k = 3, 2EP: k = 2) whose positions are *adjacent*: here, the kept
positions form one connected set of the 3×3 grid, where two positions touch
when they share an edge (``diagonal=True`` lets corners touch too). That gives
12 two-entry and 22 three-entry patterns (20 and 48 with diagonals).

Each kernel takes the pattern that keeps the most of its energy (largest L2
norm of the kept entries); the dictionary is then reduced to the patterns most
used, and every kernel picks again from that reduced dictionary.
"""

from __future__ import annotations

import functools
import itertools

import torch
from torch import Tensor

from edgeslim.core.errors import EdgeslimError

GRID = 3


def _touch(a: int, b: int, diagonal: bool) -> bool:
    (ra, ca), (rb, cb) = divmod(a, GRID), divmod(b, GRID)
    dr, dc = abs(ra - rb), abs(ca - cb)
    return max(dr, dc) == 1 if diagonal else dr + dc == 1


def _connected(cells: tuple[int, ...], diagonal: bool) -> bool:
    seen, todo = {cells[0]}, [cells[0]]
    while todo:
        a = todo.pop()
        for b in cells:
            if b not in seen and _touch(a, b, diagonal):
                seen.add(b)
                todo.append(b)
    return len(seen) == len(cells)


@functools.lru_cache(maxsize=16)
def adjacent_patterns(entries: int, diagonal: bool = False) -> tuple[tuple[int, ...], ...]:
    """Every set of ``entries`` positions (0..8, row-major) of a 3×3 kernel that is connected.

    Example:
        >>> len(adjacent_patterns(2)), len(adjacent_patterns(3)), adjacent_patterns(2)[0]
        (12, 22, (0, 1))
    """
    if not 1 <= entries <= GRID * GRID:
        raise EdgeslimError(f"a 3x3 pattern keeps 1..9 entries, got {entries}")
    return tuple(
        c for c in itertools.combinations(range(GRID * GRID), entries) if _connected(c, diagonal)
    )


def pattern_matrix(patterns: tuple[tuple[int, ...], ...]) -> Tensor:
    """``(P, 9)`` 0/1 rows, one per pattern."""
    out = torch.zeros(len(patterns), GRID * GRID)
    for i, p in enumerate(patterns):
        out[i, list(p)] = 1.0
    return out


def best_patterns(kernels: Tensor, patterns: Tensor) -> Tensor:
    """Index of the pattern keeping the largest L2 norm of each ``(K, 9)`` kernel.

    Ties go to the lowest pattern index.
    """
    energy = kernels.double().pow(2) @ patterns.double().T  # (K, P): kept squared norm
    return energy.argmax(dim=1)


def reduce_dictionary(choices: Tensor, n_patterns: int, size: int) -> list[int]:
    """The ``size`` most used pattern indices (ties: lower index first), most used first."""
    counts = torch.bincount(choices, minlength=n_patterns)
    order = sorted(range(n_patterns), key=lambda i: (-int(counts[i]), i))
    return order[: min(size, n_patterns)]
