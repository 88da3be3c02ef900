"""TinyBERT's prediction-layer distillation: soft cross-entropy at temperature ``t``.

Jiao et al., "TinyBERT: Distilling BERT for Natural Language Understanding",
Findings of EMNLP 2020, eq. 10, the last step of the task-specific stage::

    L_pred = CE(z_t / t, z_s / t) = -sum_c softmax(z_t / t)_c * log_softmax(z_s / t)_c

averaged over the batch; the paper uses ``t = 1``. It reads no labels (the teacher's
distribution is the only target), unlike Hinton KD with ``alpha < 1``. Its gradient
equals Hinton KD's soft term divided by ``t^2`` (the two differ by the teacher's
entropy, a constant).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from edgeslim.distill.hooks import Outputs
from edgeslim.distill.losses.base import LOSSES, DistillLoss, LossSpec, Probe


def soft_cross_entropy(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """``-mean_batch sum_c softmax(z_t / t) * log_softmax(z_s / t)``.

    Example:
        >>> z = torch.tensor([[0.0, 0.0]])
        >>> round(float(soft_cross_entropy(z, z)), 4)   # log 2
        0.6931
    """
    p = torch.softmax(teacher_logits.float() / temperature, dim=-1)
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return -(p * log_q).sum(-1).mean()


@LOSSES.register("soft_ce")
class SoftCrossEntropy(DistillLoss):
    """``beta * soft_cross_entropy(z_s, z_t, T)`` against one teacher (``beta`` default 1)."""

    includes_hard_labels = True  # it *replaces* the hard-label term: no CE is added

    def __init__(self, temperature: float, beta: float) -> None:
        super().__init__()
        self.temperature, self.beta = temperature, beta

    @property
    def reads_labels(self) -> bool:
        return False

    @classmethod
    def build(cls, spec: LossSpec, probe: Probe) -> SoftCrossEntropy:
        return cls(spec.temperature, 1.0 if spec.beta is None else spec.beta)

    def forward(self, student: Outputs, teachers: Sequence[Outputs], y: torch.Tensor):
        return self.beta * soft_cross_entropy(student.logits, teachers[0].logits, self.temperature)
