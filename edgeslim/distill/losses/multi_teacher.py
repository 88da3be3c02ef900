"""Multi-teacher distillation with averaged or weighted soft targets.

You, Xu, Xu, Tao, "Learning from Multiple Teacher Networks", KDD 2017: the
student matches the (weighted) average of the teachers' softened outputs::

    p = sum_i w_i softmax(z_i / T),  sum_i w_i = 1
    L = (1 - alpha) * CE(z_s, y) + alpha * T^2 * KL(p || softmax(z_s / T))

Equal weights are the paper's averaged ensemble; given weights let a stronger
teacher count more.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from edgeslim.core.errors import EdgeslimError
from edgeslim.distill.hooks import Outputs
from edgeslim.distill.losses.base import LOSSES, DistillLoss, LossSpec, Probe
from edgeslim.distill.losses.kd import soft_kl


def ensemble_soft_targets(
    teacher_logits: Sequence[torch.Tensor], temperature: float, weights: Sequence[float] | None
) -> torch.Tensor:
    """``sum_i w_i softmax(z_i / T)`` with ``w`` normalised (uniform when ``None``).

    Example:
        >>> z = torch.randn(2, 3)
        >>> torch.allclose(ensemble_soft_targets([z, z], 1.0, None), torch.softmax(z, 1))
        True
    """
    w = torch.tensor(weights if weights is not None else [1.0] * len(teacher_logits))
    if len(w) != len(teacher_logits) or (w < 0).any() or w.sum() <= 0:
        raise EdgeslimError(
            f"need {len(teacher_logits)} non-negative teacher weights, got {list(weights or [])}"
        )
    w = w / w.sum()
    probs = [torch.softmax(z.float() / temperature, dim=1) for z in teacher_logits]
    return sum(wi * p for wi, p in zip(w.tolist(), probs, strict=True))


@LOSSES.register("multi")
class MultiTeacherKD(DistillLoss):
    """KD against the weighted ensemble of all teachers' soft targets."""

    includes_hard_labels = True

    def __init__(
        self, temperature: float, alpha: float, weights: Sequence[float] | None = None
    ) -> None:
        super().__init__()
        self.temperature, self.alpha = temperature, alpha
        self.weights = tuple(weights) if weights is not None else None

    @classmethod
    def build(cls, spec: LossSpec, probe: Probe) -> MultiTeacherKD:
        w = spec.teacher_weights
        if w is not None and len(w) != len(probe.teachers):
            raise EdgeslimError(f"{len(w)} teacher weights for {len(probe.teachers)} teachers")
        return cls(spec.temperature, spec.alpha, w)

    def forward(self, student: Outputs, teachers: Sequence[Outputs], y: torch.Tensor):
        target = ensemble_soft_targets([t.logits for t in teachers], self.temperature, self.weights)
        hard = F.cross_entropy(student.logits, y)
        soft = soft_kl(student.logits, target, self.temperature)
        return (1 - self.alpha) * hard + self.alpha * soft
