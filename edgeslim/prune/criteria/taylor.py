"""First-order Taylor: Molchanov, Mallya, Tyree, Frosio, Kautz, "Importance Estimation
for Neural Network Pruning", CVPR 2019 (arXiv:1906.10771), eq. 3-5.

Removing parameter ``w`` changes the loss by about ``g * w``; a channel's score is
``sum (g_s w_s)^2`` over every parameter of the channel, in every coupled layer,
averaged over batches.
"""

from __future__ import annotations

import torch

from edgeslim.prune.criteria import Criterion, Rows, register_criterion


def taylor(rows: Rows) -> torch.Tensor:
    """``sum_s E[(g_s w_s)^2]`` per row (``rows["taylor"]`` holds ``E[(g w)^2]``)."""
    return rows["taylor"].sum(1)


register_criterion(
    "taylor",
    Criterion(
        taylor,
        needs="gradients",
        spaces="all",
        summary="first-order Taylor (g*w)^2 (Molchanov et al. 2019); needs data",
    ),
)
