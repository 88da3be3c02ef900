"""L1 filter norm: Li, Kadav, Durdanovic, Samet, Graf, "Pruning Filters for Efficient
ConvNets", ICLR 2017 (arXiv:1608.08710). A filter with small sum |w| contributes little."""

from __future__ import annotations

import torch

from edgeslim.prune.criteria import Criterion, Rows, register_criterion


def l1_norm(rows: Rows) -> torch.Tensor:
    """``sum_j |w_ij|`` per row."""
    return rows["weight"].abs().sum(1)


register_criterion("l1", Criterion(l1_norm, summary="L1 norm of each filter (Li et al. 2017)"))
