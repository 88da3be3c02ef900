"""Distillation as a trainer objective: ``loss_fn`` plus the ``extra`` module it trains.

:class:`Distiller` is both what :class:`~edgeslim.train.trainer.Trainer` calls as
``loss_fn(model, x, y) -> (loss, logits)`` and the ``extra`` module whose
adapters and auxiliary heads are optimised, synced under DDP and checkpointed
with the student. Teachers are held outside the module tree: they are never
trained, never checkpointed and never put in train mode; each step runs them
frozen (``no_grad``, eval mode, restored after) and captures their features with
hooks that are removed in ``finally``.

The objective is the sum of the selected losses; when none of them mixes in the
hard labels (feature losses alone) the task's loss on ``y`` (cross-entropy for
classification) is added once. With ``hard_labels=False`` (TinyBERT's general
distillation on an unlabeled corpus, and its task stage) no label is read at all:
the CE is not added and a loss that reads ``y`` is refused. The task
(:mod:`edgeslim.tasks`) also supplies the default logits-level KD (``kd``) and checks
the student's outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.distill.hooks import Outputs, run_with_features, teacher_forward
from edgeslim.distill.layers import default_layer_pairs
from edgeslim.distill.losses import LOSSES, DistillLoss, LossSpec, Probe
from edgeslim.tasks import Task, get_task


def parse_loss_names(text: str) -> tuple[str, ...]:
    """``"kd+feature"`` -> ``("kd", "feature")``, each checked against the registry."""
    names = tuple(n.strip() for n in text.split("+") if n.strip())
    if not names:
        raise EdgeslimError("no distillation loss given")
    for n in names:
        LOSSES.get(n)
    return names


class Distiller(nn.Module):
    """The distillation objective; build it with :meth:`build`.

    Example:
        >>> from edgeslim.models import build_zoo_model
        >>> s, t = build_zoo_model("resnet20_half"), build_zoo_model("resnet20")
        >>> d = Distiller.build(s, [t], "kd+feature", LossSpec(), torch.randn(2, 3, 32, 32))
        >>> loss, logits = d(s, torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))
        >>> # Trainer(s, cfg, loss_fn=d, extra=d).fit(train, val)
    """

    def __init__(
        self,
        losses: Sequence[DistillLoss],
        teachers: Sequence[nn.Module],
        task: str | Task = "classification",
        hard_labels: bool = True,
    ) -> None:
        super().__init__()
        readers = [type(lo).__name__ for lo in losses if lo.reads_labels]
        if not hard_labels and readers:
            raise EdgeslimError(
                f"label-free distillation cannot use {', '.join(readers)}: it reads the labels "
                "(use soft_ce, or kd with alpha=1)"
            )
        self.task = get_task(task)
        self.losses = nn.ModuleList(losses)
        self._teachers = tuple(teachers)  # a tuple: not submodules, never trained or saved
        self.student_layers = _union(lo.student_layers for lo in losses)
        self.teacher_layers = _union(lo.teacher_layers for lo in losses)
        self.add_ce = hard_labels and not any(lo.includes_hard_labels for lo in losses)

    @property
    def teachers(self) -> tuple[nn.Module, ...]:
        return self._teachers

    @classmethod
    def build(
        cls,
        student: nn.Module,
        teachers: Sequence[nn.Module],
        losses: str | Sequence[str],
        spec: LossSpec,
        example: torch.Tensor,
        task: str | Task = "classification",
        hard_labels: bool = True,
    ) -> Distiller:
        """Build the objective for ``student`` from ``teachers`` with the named losses.

        Args:
            student: the model being trained (used once, on ``example``, in eval mode).
            teachers: frozen teachers (empty for self-distillation).
            losses: registry names, a list or ``"kd+feature"``.
            spec: hyper-parameters; ``spec.layers`` empty means the default layer mapping.
            example: an input batch (>= 2 samples) that sizes adapters and heads.
            task: what the data is: hard-label loss, default KD, output checks.
            hard_labels: add the task loss on ``y`` when no loss mixes it in; False reads
                no label at all (TinyBERT's general and task stages).
        """
        task = get_task(task)
        names = parse_loss_names(losses) if isinstance(losses, str) else tuple(losses)
        kinds = [LOSSES.get(n) for n in names]
        if any(k.needs_teacher for k in kinds) and not teachers:
            raise EdgeslimError(f"loss {'+'.join(names)} needs a teacher")
        if any(k.needs_layers for k in kinds) and not spec.layers:
            from dataclasses import replace

            teacher = (teachers or [None])[0]
            own = [k.default_layers(student, teacher) for k in kinds if k.needs_layers]
            own = [layers for layers in own if layers is not None]
            attention = any(k.wants_attention for k in kinds)
            fallback = own[0] if own else default_layer_pairs(student, teacher, attention)
            spec = replace(spec, layers=fallback)
        s_layers = [s for s, _ in spec.layers] if any(k.needs_layers for k in kinds) else []
        t_layers = [t for _, t in spec.layers] if teachers and s_layers else []
        probe = Probe(
            _scored(teacher_forward(student, example, s_layers), task),
            tuple(_scored(teacher_forward(t, example, t_layers), task) for t in teachers),
            task,
        )
        if not torch.is_tensor(probe.student.logits):
            raise EdgeslimError("the student must return a tensor of logits")
        try:
            task.check_output(probe.student.logits, example, None)
        except EdgeslimError as e:
            raise EdgeslimError(f"the student does not fit {task.name}: {e}") from None
        for t in probe.teachers:
            if t.logits.shape != probe.student.logits.shape:
                raise EdgeslimError(
                    f"teacher logits {tuple(t.logits.shape)} do not match the student's "
                    f"{tuple(probe.student.logits.shape)}: different number of classes"
                )
        built = [k.build(spec, probe) for k in kinds]
        return cls(built, teachers, task, hard_labels).to(example.device)

    def forward(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The trainer's ``loss_fn``: ``(total loss, student logits)``."""
        student = _scored(run_with_features(model, x, self.student_layers), self.task)
        teachers = [
            _scored(teacher_forward(_on(t, x.device), x, self.teacher_layers), self.task)
            for t in self._teachers
        ]
        total = sum(lo(student, teachers, y) for lo in self.losses)
        if self.add_ce:
            total = total + self.task.loss(student.logits, y, 0.0)
        return total, student.logits


def _scored(out: Outputs, task: Task) -> Outputs:
    """``out`` with the tensor the task scores as its logits (as the trainer's default loss
    sees them): a detector's raw head maps become its decoded rows."""
    return out._replace(logits=task.outputs(out.logits))


def _on(module: nn.Module, device: torch.device) -> nn.Module:
    """Move a teacher to the student's device once (a no-op when already there)."""
    p = next(module.parameters(), None)
    if p is not None and p.device != device:
        module.to(device)
    return module


def _union(groups) -> tuple[str, ...]:
    out: list[str] = []
    for g in groups:
        out += [n for n in g if n not in out]
    return tuple(out)
