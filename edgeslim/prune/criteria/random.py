"""Random scores: the control every criterion should beat (Mittal et al., "Studying the
Plasticity in Deep Convolutional Neural Networks using Random Pruning", 2019)."""

from __future__ import annotations

import torch

from edgeslim.prune.criteria import Criterion, Rows, register_criterion


def random_scores(rows: Rows) -> torch.Tensor:
    """Uniform scores from ``rows["generator"]`` (seeded, so runs repeat)."""
    w = rows["weight"]
    return torch.rand(w.shape[0], generator=rows.get("generator"))


register_criterion("random", Criterion(random_scores, summary="random (control)"))
