"""A task as data: loss, metrics, batches, decoding and comparison in one frozen entry.

The trainer, evaluation, search sensitivity, distillation and reports ask the task
instead of assuming classification: what to minimise, what to report (and whether
higher is better), how a batch splits into inputs and targets, how outputs become
predictions, and how two models' outputs are compared. A new task (detection, say)
is a new :class:`Task` registered in :data:`TASKS`, not an edit of its consumers.

Example:
    >>> from edgeslim.tasks import get_task
    >>> task = get_task("classification")
    >>> task.primary, task.primary_metric.higher_is_better
    ('top1', True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import default_collate

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.registry import Registry
from edgeslim.tasks.batch import Inputs, call_model, main_output, move, split_pair
from edgeslim.tasks.compare import ParitySpec
from edgeslim.tasks.metrics import Accumulator

# (outputs, targets, label_smoothing) -> scalar loss
LossFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
# (student outputs, teacher outputs, targets, temperature, alpha) -> scalar loss
DistillFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float, float], torch.Tensor]


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a task.

    Attributes:
        name: key in results and logs, e.g. ``"top1"``, ``"miou"``.
        label: what reports print, e.g. ``"top-1"``, ``"mIoU"``.
        higher_is_better: the direction; drops and "best" follow it.
        make: a new, empty :class:`~edgeslim.tasks.metrics.Accumulator`.
        percent: reports print ``100 * value`` with a ``%``.
    """

    name: str
    label: str
    higher_is_better: bool
    make: Callable[[], Accumulator]
    percent: bool = True

    def drop(self, before: float, after: float) -> float:
        """How much worse ``after`` is than ``before`` (positive = worse), in the metric's unit."""
        return before - after if self.higher_is_better else after - before

    def header(self) -> str:
        """Column header: ``"top-1 %"``."""
        return f"{self.label} %" if self.percent else self.label


class MetricSet:
    """Every metric of a task, accumulated together.

    Example:
        >>> from edgeslim.tasks import get_task
        >>> ms = get_task("classification").new_metrics()
        >>> ms.update(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
        >>> ms.compute()
        {'top1': 1.0}
    """

    def __init__(self, specs: Iterable[MetricSpec]) -> None:
        self.acc = {s.name: s.make() for s in specs}

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        for a in self.acc.values():
            a.update(outputs, targets)

    def compute(self) -> dict[str, float]:
        return {k: a.compute() for k, a in self.acc.items()}

    @property
    def count(self) -> int:
        return max((a.count for a in self.acc.values()), default=0)

    def state(self) -> list[float]:
        """All accumulators' statistics, flattened (sum them over processes)."""
        return [v for a in self.acc.values() for v in a.state()]

    def load_state(self, state: list[float]) -> None:
        i = 0
        for a in self.acc.values():
            n = len(a.state())
            a.load_state(state[i : i + n])
            i += n


def _no_check(outputs: torch.Tensor, inputs: Inputs, num_classes: int | None) -> None:
    return None


@dataclass(frozen=True)
class Task:
    """A task entry; see the module docstring.

    Attributes:
        name: registry name.
        loss: ``(outputs, targets, label_smoothing) -> scalar``.
        metrics: every reported metric; ``primary`` names the one targets and reports use.
        primary: name of the headline metric.
        decode: ``outputs -> predictions`` (class ids, per-pixel class ids, ...).
        parity: how two models' outputs are compared.
        distill: default logits-level distillation loss.
        check_output: raises :class:`EdgeslimError` when outputs do not fit the task.
        collate: samples -> batch (a ``DataLoader``'s ``collate_fn``).
        split: batch -> ``(inputs, targets)``.
        outputs: raw model output -> the tensor the task scores (e.g. ``.logits``).
        chance: ``num_classes ->`` the primary metric of uniform guessing (1/C for top-1),
            the level a model that learned nothing scores; None where the task has no
            such level (e.g. mIoU), and then no chance check applies.
        train_defaults: the training options (``TrainConfig`` fields) the CLI uses for
            this task where the user gives none, e.g. detection's YOLOv5 ``lr`` 0.01.
    """

    name: str
    loss: LossFn
    metrics: tuple[MetricSpec, ...]
    primary: str
    decode: Callable[[torch.Tensor], torch.Tensor]
    parity: ParitySpec
    distill: DistillFn
    check_output: Callable[[torch.Tensor, Inputs, int | None], None] = _no_check
    collate: Callable[[list], Any] = default_collate
    split: Callable[[Any], tuple[Inputs, Any]] = split_pair
    outputs: Callable[[Any], torch.Tensor] = main_output
    chance: Callable[[int], float] | None = None
    description: str = field(default="", compare=False)
    train_defaults: Mapping[str, float] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"task {self.name!r} lists a metric twice: {names}")
        if self.primary not in names:
            raise ValueError(f"task {self.name!r}: primary {self.primary!r} is not in {names}")

    @property
    def primary_metric(self) -> MetricSpec:
        return self.metric(self.primary)

    def metric(self, name: str) -> MetricSpec:
        for m in self.metrics:
            if m.name == name:
                return m
        raise EdgeslimError(
            f"task {self.name!r} has no metric {name!r}; "
            f"choose one of: {', '.join(m.name for m in self.metrics)}"
        )

    def new_metrics(self) -> MetricSet:
        """Fresh accumulators for every metric."""
        return MetricSet(self.metrics)

    def forward(self, model: nn.Module, inputs: Inputs) -> torch.Tensor:
        """Run ``model`` on ``inputs`` and return the tensor the task scores."""
        return self.outputs(call_model(model, inputs))

    def to_device(self, batch: Any, device: torch.device | str) -> tuple[Inputs, Any]:
        """Split ``batch`` and move inputs and targets to ``device``."""
        x, y = self.split(batch)
        nb = torch.device(device).type == "cuda"
        return move(x, device, nb), move(y, device, nb)


TASKS: Registry[Task] = Registry("task")


def register_task(task: Task) -> Task:
    """Add ``task`` to :data:`TASKS` under ``task.name`` (a second one of that name raises)."""
    TASKS.register(task.name, task)
    return task


def get_task(task: str | Task) -> Task:
    """The registered task of that name (a :class:`Task` passes through).

    Example:
        >>> get_task("segmentation").primary
        'miou'
    """
    return task if isinstance(task, Task) else TASKS.get(task)
