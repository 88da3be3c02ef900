"""Logit matching by mean squared error.

Ba & Caruana, "Do Deep Nets Really Need to be Deep?", NIPS 2014, regress the
teacher's logits directly; Hinton et al. (2015) show this is the high-temperature
limit of KD. Mixed with the hard labels by ``alpha`` like :mod:`.kd`::

    L = (1 - alpha) * CE(z_s, y) + alpha * mean((z_s - z_t)^2)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from edgeslim.distill.hooks import Outputs
from edgeslim.distill.losses.base import LOSSES, DistillLoss, LossSpec, Probe


def logits_mse(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor, alpha: float
) -> torch.Tensor:
    """``(1 - alpha) * CE + alpha * MSE(z_s, z_t)``.

    Example:
        >>> z = torch.randn(3, 5)
        >>> float(logits_mse(z, z, torch.zeros(3, dtype=torch.long), alpha=1.0))
        0.0
    """
    mse = F.mse_loss(student_logits.float(), teacher_logits.float())
    if alpha >= 1:
        return mse
    return (1 - alpha) * F.cross_entropy(student_logits, y) + alpha * mse


@LOSSES.register("mse")
class LogitsMSE(DistillLoss):
    """:func:`logits_mse` against one teacher (the first, if several are given)."""

    includes_hard_labels = True

    def __init__(self, alpha: float = 0.9) -> None:
        super().__init__()
        self.alpha = alpha

    @classmethod
    def build(cls, spec: LossSpec, probe: Probe) -> LogitsMSE:
        return cls(spec.alpha)

    def forward(self, student: Outputs, teachers: Sequence[Outputs], y: torch.Tensor):
        return logits_mse(student.logits, teachers[0].logits, y, self.alpha)
