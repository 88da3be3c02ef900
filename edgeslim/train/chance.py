"""A guard against silent failure: training whose accuracy stays at chance.

Hard data can sit at chance for a few epochs before a network finds its features (on
the generated ``glyphs26`` set the reference loop is at chance until epoch 4 of 15), so the
guard looks after a third of the run, at least :data:`CHECK_AFTER_EPOCHS` epochs, and
at the end. A network still at chance then is rarely going to learn: the usual causes
are labels that do not match the images, inputs normalized very differently from what
the model expects, or a learning rate far too high. The guard says so, and with
``strict`` stops the run with an error.

Chance is a property of the task (:attr:`edgeslim.tasks.Task.chance`): uniform guessing
scores ``1 / num_classes`` top-1 in classification. The guard watches the task's primary
metric and does not apply to a task without a chance level (segmentation's mIoU).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

from edgeslim.core.errors import EdgeslimError
from edgeslim.tasks import Task, get_task
from edgeslim.train.distributed import is_main_process

CHECK_AFTER_EPOCHS = 3
MARGIN = 0.02  # accuracy within 2 points of 1/num_classes counts as chance


def chance_level(num_classes: int, task: str | Task = "classification") -> float | None:
    """The primary metric of uniform guessing among ``num_classes`` (None: the task has none).

    Example:
        >>> chance_level(4)
        0.25
        >>> chance_level(4, "segmentation") is None
        True
    """
    t = get_task(task)
    return t.chance(num_classes) if t.chance is not None else None


def chance_guard(
    task: str | Task, num_classes: int, epochs: int, strict: bool = False
) -> ChanceGuard | None:
    """A :class:`ChanceGuard` for ``task``, or None when the task has no chance level."""
    if chance_level(num_classes, task) is None:
        return None
    return ChanceGuard(num_classes, epochs, strict=strict, task=get_task(task))


@dataclass
class ChanceGuard:
    """Called with the history after every epoch (``Trainer(on_epoch=...)``).

    It checks the task's primary metric (top-1 for classification) on the validation
    split, on the training batches when there is none, after epoch
    ``max(after_epochs, ceil(epochs / 3))`` (capped at ``epochs``) and after the last epoch.
    A task without a chance level raises: use :func:`chance_guard`, which skips it.

    Example:
        >>> guard = ChanceGuard(num_classes=10, epochs=5, strict=True)
        >>> guard([{"epoch": 1, "val_top1": 0.1, "train_top1": 0.1}])  # too early: no check
    """

    num_classes: int
    epochs: int
    strict: bool = False
    after_epochs: int = CHECK_AFTER_EPOCHS
    margin: float = MARGIN
    warned: bool = False
    task: str | Task = "classification"
    chance: float = field(init=False)

    def __post_init__(self) -> None:
        t = get_task(self.task)
        level = chance_level(self.num_classes, t)
        if level is None or not t.primary_metric.higher_is_better:
            raise EdgeslimError(f"task {t.name!r} has no chance level to guard against")
        self.task, self.chance = t, level

    def __call__(self, history: list[dict]) -> None:
        last = history[-1]
        epoch = int(last["epoch"])
        first = min(max(self.after_epochs, math.ceil(self.epochs / 3)), self.epochs)
        if epoch not in (first, self.epochs):
            return
        metric = get_task(self.task).primary_metric
        acc = last.get(f"val_{metric.name}")
        split = "validation"
        if acc is None:
            acc, split = last[f"train_{metric.name}"], "training"
        chance = self.chance
        if acc > chance + self.margin:
            return
        text = (
            f"{split} {metric.label} is {100 * acc:.1f}% after {epoch} epoch(s), chance level for "
            f"{self.num_classes} classes ({100 * chance:.1f}%): the model is not learning. "
            "Check that labels match images, try --lr auto or a lower --lr, "
            "or a longer --warmup-epochs"
        )
        if self.strict:
            raise EdgeslimError(text)
        self.warned = True
        if is_main_process():
            print(f"edgeslim: warning: {text}", file=sys.stderr, flush=True)
