"""Comparing two models' outputs: parity (same predictions?) and distillation (soft targets).

Parity has two verdicts, because a twin is either exact or lossy:

- an exact twin (ONNX export, BN folding, a pruned model against its masked dense
  model) must agree elementwise: largest absolute difference ``<= atol``;
- a lossy twin (INT8, fp16) must make the same decisions: the task's agreement
  (top-1 agreement, per-pixel agreement) ``>= min_agreement``.

Distillation's default logits-level loss is Hinton KD (Hinton, Vinyals, Dean,
"Distilling the Knowledge in a Neural Network", arXiv:1503.02531) applied at every
position that carries a class distribution: per sample for classification, per pixel
for segmentation::

    L = (1 - alpha) * task_loss(z_s, y) + alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Agreement = Callable[[torch.Tensor, torch.Tensor], tuple[int, int]]  # (matches, count) of a batch


def argmax_agreement(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int]:
    """Positions (samples or pixels) where the class dimension's argmax agrees.

    Example:
        >>> argmax_agreement(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))
        (0, 1)
    """
    pa, pb = a.detach().argmax(1), b.detach().argmax(1)
    return int((pa == pb).sum()), int(pa.numel())


@dataclass(frozen=True)
class ParitySpec:
    """How a task compares two models' outputs.

    Attributes:
        measure: name of the agreement, e.g. ``"top1_agreement"``.
        agreement: ``(outputs_a, outputs_b) -> (matches, count)`` for one batch.
        atol: largest absolute output difference an exact twin may show.
        min_agreement: smallest agreement a lossy twin may show (fraction).
    """

    measure: str
    agreement: Agreement = argmax_agreement
    atol: float = 1e-3
    min_agreement: float = 0.99

    def meter(self, lossy: bool = False) -> ParityMeter:
        """An accumulator of the comparison over batches."""
        return ParityMeter(self, lossy)


class ParityMeter:
    """Accumulates agreement and the largest difference over batches (bounded memory).

    Example:
        >>> from edgeslim.tasks import get_task
        >>> m = get_task("classification").parity.meter()
        >>> z = torch.randn(4, 3)
        >>> m.update(z, z + 1e-6)
        >>> m.result()["ok"]
        True
    """

    def __init__(self, spec: ParitySpec, lossy: bool) -> None:
        self.spec, self.lossy = spec, lossy
        self.matches = self.count = 0
        self.max_abs_diff = 0.0

    def update(self, a: torch.Tensor, b: torch.Tensor) -> None:
        if a.shape != b.shape:
            raise ValueError(f"outputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        m, n = self.spec.agreement(a, b)
        self.matches += m
        self.count += n
        if a.numel():
            diff = (a.detach().float() - b.detach().float()).abs().max()
            self.max_abs_diff = max(self.max_abs_diff, float(diff))

    def result(self) -> dict:
        """``{measure: fraction, "max_abs_diff": x, "n": positions, "ok": verdict}``."""
        agree = self.matches / self.count if self.count else float("nan")
        if self.lossy:
            ok = agree >= self.spec.min_agreement
        else:
            ok = self.max_abs_diff <= self.spec.atol
        return {
            self.spec.measure: agree,
            "max_abs_diff": self.max_abs_diff,
            "n": self.count,
            "ok": ok,
        }


def class_rows(z: torch.Tensor) -> torch.Tensor:
    """``(N, C, *rest)`` logits as ``(N * prod(rest), C)``: one row per position."""
    if z.dim() == 2:
        return z
    return z.movedim(1, -1).reshape(-1, z.shape[1])


def soft_kl(student: torch.Tensor, target_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(target || softmax(z_s / T))`` averaged over rows (``(M, C)`` inputs)."""
    log_q = F.log_softmax(student.float() / temperature, dim=1)
    return F.kl_div(log_q, target_probs.float(), reduction="batchmean") * temperature**2


def logits_kd(
    student: torch.Tensor,
    teacher: torch.Tensor,
    targets: torch.Tensor,
    hard_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    """Hinton KD at every class-distribution position (the module docstring has the math).

    Example:
        >>> z, y = torch.randn(4, 10), torch.tensor([0, 1, 2, 3])
        >>> ce = F.cross_entropy
        >>> torch.allclose(logits_kd(z, z.neg(), y, ce, alpha=0.0), ce(z, y))
        True
    """
    s, t = class_rows(student), class_rows(teacher)
    soft = torch.softmax(t.float() / temperature, dim=1)
    hard = hard_loss(student, targets) if alpha < 1 else student.new_zeros(())
    return (1 - alpha) * hard + alpha * soft_kl(s, soft, temperature)


def kd_with(hard_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable:
    """A task's distillation loss: :func:`logits_kd` mixed with the task's own ``hard_loss``.

    Example:
        >>> z, y = torch.randn(4, 10), torch.tensor([0, 1, 2, 3])
        >>> kd = kd_with(F.cross_entropy)
        >>> torch.equal(kd(z, z, y, temperature=2.0), logits_kd(z, z, y, F.cross_entropy, 2.0))
        True
    """

    def kd(student, teacher, targets, temperature: float = 4.0, alpha: float = 0.9):
        return logits_kd(student, teacher, targets, hard_loss, temperature, alpha)

    kd.__doc__ = f"Hinton KD mixed with ``{getattr(hard_loss, '__name__', 'the task loss')}``."
    return kd
