"""Attention transfer: match where the student and teacher "look".

Zagoruyko & Komodakis, "Paying More Attention to Attention: Improving the
Performance of Convolutional Neural Networks via Attention Transfer", ICLR 2017.
The activation-based spatial attention map of a feature ``A`` (C x H x W) is
``Q = sum_c |A_c|^p`` (p = 2), flattened and L2-normalised; the loss is::

    L_AT = beta / 2 * sum_pairs mean((Q_s / ||Q_s|| - Q_t / ||Q_t||)^2)

with ``beta = 1000`` as in the authors' code. Channel counts may differ (the map
sums them away), so no adapter is needed; spatial sizes are matched by pooling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from edgeslim.distill.hooks import Outputs
from edgeslim.distill.losses.base import (
    LOSSES,
    DistillLoss,
    LayerPair,
    LossSpec,
    Probe,
    split_layers,
)
from edgeslim.distill.losses.fitnets import match_spatial


def attention_map(feat: torch.Tensor, p: int = 2) -> torch.Tensor:
    """``normalize(mean_c |A_c|^p)`` flattened: (N, H*W) for maps, (N, T) for tokens.

    Example:
        >>> attention_map(torch.ones(2, 3, 4, 4)).norm(dim=1)
        tensor([1., 1.])
    """
    feat = feat.float()
    a = feat.abs().pow(p).mean(1) if feat.dim() == 4 else feat.abs().pow(p).mean(-1)
    return F.normalize(a.flatten(1), dim=1)


def at_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor, p: int = 2) -> torch.Tensor:
    """``mean((Q_s - Q_t)^2)`` of the normalised attention maps of one layer pair."""
    s, t = match_spatial(student_feat, teacher_feat)
    return (attention_map(s, p) - attention_map(t, p)).pow(2).mean()


@LOSSES.register("at")
class AttentionTransfer(DistillLoss):
    """``beta / 2 * sum_pairs at_loss``."""

    needs_layers = True
    default_beta = 1000.0

    def __init__(self, layers: Sequence[LayerPair], beta: float, p: int = 2) -> None:
        super().__init__()
        self.student_layers, self.teacher_layers = split_layers(layers)
        self.beta, self.p = beta, p

    @classmethod
    def build(cls, spec: LossSpec, probe: Probe) -> AttentionTransfer:
        return cls(spec.layers, cls.default_beta if spec.beta is None else spec.beta)

    def forward(self, student: Outputs, teachers: Sequence[Outputs], y: torch.Tensor):
        t = teachers[0].features
        terms = [
            at_loss(student.features[a], t[b], self.p)
            for a, b in zip(self.student_layers, self.teacher_layers, strict=True)
        ]
        return self.beta / 2 * sum(terms)
