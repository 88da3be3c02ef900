"""Hinton knowledge distillation: soft targets at temperature T, mixed with hard labels.

Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", NIPS
Deep Learning Workshop 2015 (arXiv:1503.02531)::

    L = (1 - alpha) * CE(z_s, y) + alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

The ``T^2`` keeps the soft term's gradient magnitude independent of ``T`` (the
gradients of the softened term scale as ``1 / T^2``), so ``alpha`` means the same
at every temperature.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from edgeslim.core.errors import EdgeslimError
from edgeslim.distill.hooks import Outputs
from edgeslim.distill.losses.base import LOSSES, DistillLoss, LossSpec, Probe
from edgeslim.tasks import Task
from edgeslim.tasks.classification import CLASSIFICATION


def soft_kl(
    student_logits: torch.Tensor, target_probs: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``T^2 * KL(target || softmax(z_s / T))``, averaged over the batch.

    Example:
        >>> z = torch.randn(4, 10)
        >>> float(soft_kl(z, torch.softmax(z / 2, 1), 2.0)) < 1e-6
        True
    """
    log_q = F.log_softmax(student_logits.float() / temperature, dim=1)
    return F.kl_div(log_q, target_probs.float(), reduction="batchmean") * temperature**2


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    y: torch.Tensor,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    """Hinton KD: ``(1 - alpha) * CE + alpha * T^2 * KL`` (the module docstring has the math).

    Example:
        >>> z, y = torch.randn(4, 10), torch.tensor([0, 1, 2, 3])
        >>> torch.allclose(kd_loss(z, z.neg(), y, alpha=0.0), F.cross_entropy(z, y))
        True
    """
    soft = torch.softmax(teacher_logits.float() / temperature, dim=1)
    hard = F.cross_entropy(student_logits, y) if alpha < 1 else student_logits.new_zeros(())
    return (1 - alpha) * hard + alpha * soft_kl(student_logits, soft, temperature)


@LOSSES.register("kd")
class HintonKD(DistillLoss):
    """The task's logits-level KD against one teacher (:func:`kd_loss` for classification,
    KD at every pixel for segmentation; see :mod:`edgeslim.tasks.compare`)."""

    includes_hard_labels = True

    def __init__(
        self, temperature: float = 4.0, alpha: float = 0.9, task: Task | None = None
    ) -> None:
        super().__init__()
        self.temperature, self.alpha = temperature, alpha
        self._task = (task or CLASSIFICATION,)  # a tuple: plain data, not a submodule

    @property
    def reads_labels(self) -> bool:
        return self.alpha < 1

    @classmethod
    def build(cls, spec: LossSpec, probe: Probe) -> HintonKD:
        if len(probe.teachers) != 1:
            raise EdgeslimError(
                f"'kd' distils from one teacher, got {len(probe.teachers)}; use 'multi'"
            )
        return cls(spec.temperature, spec.alpha, probe.task)

    def forward(self, student: Outputs, teachers: Sequence[Outputs], y: torch.Tensor):
        kd = self._task[0].distill
        return kd(student.logits, teachers[0].logits, y, self.temperature, self.alpha)
