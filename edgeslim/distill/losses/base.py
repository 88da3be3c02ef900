"""The loss interface and registry shared by every distillation loss.

A distillation loss is a small ``nn.Module`` (it may own learned adapters or
auxiliary heads) with ``forward(student, teachers, y) -> scalar``, where
``student`` and each teacher are :class:`~edgeslim.distill.hooks.Outputs`
(logits plus features captured by name). :meth:`DistillLoss.build` sizes the
loss from one probe forward pass, so every adapter exists before the optimiser
is built and is checkpointed as part of the trainer's ``extra``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.registry import Registry
from edgeslim.distill.hooks import Outputs
from edgeslim.tasks import Task
from edgeslim.tasks.classification import CLASSIFICATION

LayerPair = tuple[str, str]  # (student layer, teacher layer)


@dataclass(frozen=True)
class LossSpec:
    """Hyper-parameters every loss builder may read.

    Args:
        temperature: softmax temperature ``T`` of logit distillation.
        alpha: weight of the soft (teacher) term; ``1 - alpha`` weighs the hard-label CE.
        beta: weight of a feature term; ``None`` takes the loss's published default.
        layers: ``(student, teacher)`` layer pairs for feature losses (for
            self-distillation: the student's blocks, shallow to deep).
        teacher_weights: multi-teacher weights (normalised to sum 1); ``None`` averages.
    """

    temperature: float = 4.0
    alpha: float = 0.9
    beta: float | None = None
    layers: tuple[LayerPair, ...] = ()
    teacher_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise EdgeslimError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise EdgeslimError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.beta is not None and self.beta < 0:
            raise EdgeslimError(f"beta must be >= 0, got {self.beta}")


@dataclass(frozen=True)
class Probe:
    """One forward pass of the student and the teachers on an example batch, and the task.

    ``task`` (an :mod:`edgeslim.tasks` entry) gives the default logits-level KD and the
    hard-label loss; ``classification`` when not set.
    """

    student: Outputs
    teachers: tuple[Outputs, ...]
    task: Task = CLASSIFICATION


class DistillLoss(nn.Module, ABC):
    """Base of every registered loss (ABC -> concrete, nothing deeper)."""

    #: the loss already mixes the hard-label cross-entropy in (by ``alpha``)
    includes_hard_labels: ClassVar[bool] = False
    #: the loss needs at least one teacher
    needs_teacher: ClassVar[bool] = True
    #: the loss reads features, so ``LossSpec.layers`` must name some
    needs_layers: ClassVar[bool] = False
    #: the default transformers layer mapping should pair attention maps too (TinyBERT)
    wants_attention: ClassVar[bool] = False

    student_layers: tuple[str, ...] = ()
    teacher_layers: tuple[str, ...] = ()

    @property
    def reads_labels(self) -> bool:
        """Whether ``forward`` uses ``y``; label-free distillation refuses a loss that does."""
        return self.includes_hard_labels

    @classmethod
    def default_layers(cls, student: nn.Module, teacher: nn.Module | None):
        """The layers this loss reads when none are given; None: the shared default mapping."""
        return None

    @classmethod
    @abstractmethod
    def build(cls, spec: LossSpec, probe: Probe) -> DistillLoss:
        """Size the loss (adapters, heads) from ``probe``."""

    @abstractmethod
    def forward(
        self, student: Outputs, teachers: Sequence[Outputs], y: torch.Tensor
    ) -> torch.Tensor:
        """The loss value (a scalar)."""


LOSSES: Registry[type[DistillLoss]] = Registry("distillation loss")


def split_layers(layers: Sequence[LayerPair]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``[(s1, t1), (s2, t2)]`` -> ``((s1, s2), (t1, t2))``."""
    return tuple(s for s, _ in layers), tuple(t for _, t in layers)
