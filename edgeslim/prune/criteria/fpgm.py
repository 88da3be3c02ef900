"""FPGM: He, Liu, Wang, Hu, Yang, "Filter Pruning via Geometric Median for Deep
Convolutional Neural Networks Acceleration", CVPR 2019 (arXiv:1811.00250).

Filters near the geometric median of a layer's filters are the most replaceable
by the others; a filter's score is its total distance to all other filters. Here
every coupled layer's rows count (producers' filters, BN scales, consumers' input
columns) and the distances are summed over them (``spaces="all"``, ``reduce="sum"``):
60% top-1 after BN recalibration on half-MACs ResNet-56, against 53% for the
producers alone and 47% for the producers with every layer weighed equally
(``benchmarks/results/pruning_criteria.json``).
"""

from __future__ import annotations

import torch

from edgeslim.prune.criteria import Criterion, Rows, register_criterion


def fpgm(rows: Rows) -> torch.Tensor:
    """``sum_j ||w_i - w_j||_2`` per row (small = redundant)."""
    w = rows["weight"].float()
    return torch.cdist(w[None], w[None])[0].sum(1)


register_criterion(
    "fpgm",
    Criterion(
        fpgm,
        spaces="all",
        reduce="sum",
        summary="distance to the geometric median (He et al. 2019)",
    ),
)
