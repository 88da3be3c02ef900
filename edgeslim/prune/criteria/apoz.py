"""APoZ: Hu, Peng, Tai, Tang, "Network Trimming: A Data-Driven Neuron Pruning Approach
towards Efficient Deep Architectures", 2016 (arXiv:1607.03250).

The Average Percentage of Zeros of a channel's post-activation output over a few
batches; a channel that is mostly zero is pruned first.
"""

from __future__ import annotations

import torch

from edgeslim.prune.criteria import Criterion, Rows, register_criterion


def apoz(rows: Rows) -> torch.Tensor:
    """``1 - APoZ`` per channel (higher = more often active = keep)."""
    return 1.0 - rows["apoz"].mean(1)


register_criterion(
    "apoz",
    Criterion(
        apoz,
        needs="activations",
        view="activation",
        summary="fraction of zero activations (Hu et al. 2016); needs data",
    ),
)
