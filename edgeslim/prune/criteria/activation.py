"""Mean activation: Molchanov, Tyree, Karras, Aila, Kautz, "Pruning Convolutional Neural
Networks for Resource Efficient Inference", ICLR 2017 (arXiv:1611.06440), Section 2.2
baseline: the mean magnitude of a channel's post-activation output over data."""

from __future__ import annotations

import torch

from edgeslim.prune.criteria import Criterion, Rows, register_criterion


def mean_activation(rows: Rows) -> torch.Tensor:
    """Mean ``|a_i|`` per channel."""
    return rows["mean_act"].mean(1)


register_criterion(
    "mean_activation",
    Criterion(
        mean_activation,
        needs="activations",
        view="activation",
        summary="mean |activation| (Molchanov et al. 2017); needs data",
    ),
)
