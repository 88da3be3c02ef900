"""Optimal Brain Damage: LeCun, Denker, Solla, "Optimal Brain Damage", NIPS 1990.

Removing ``w`` at a minimum costs about ``0.5 * H_ss * w_s^2``; the diagonal Hessian is
approximated by the empirical Fisher ``E[g_s^2]`` (the Gauss-Newton diagonal for
cross-entropy), summed over every parameter of a channel in every coupled layer.
"""

from __future__ import annotations

import torch

from edgeslim.prune.criteria import Criterion, Rows, register_criterion


def obd(rows: Rows) -> torch.Tensor:
    """``sum_s 0.5 * F_ss * w_s^2`` per row."""
    return 0.5 * (rows["fisher"] * rows["weight"].pow(2)).sum(1)


register_criterion(
    "obd",
    Criterion(
        obd,
        needs="gradients",
        spaces="all",
        summary="OBD saliency with diagonal Fisher (LeCun et al. 1990); needs data",
    ),
)
