"""A guard against silent failure: training whose accuracy stays at chance.

A network that has not left chance after its first epochs (warm-up included) is
almost never going to: the usual causes are labels that do not match the images,
inputs normalized very differently from what the model expects, or a learning rate
far too high. The guard says so, and with ``strict`` stops the run with an error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from edgeslim.core.errors import EdgeslimError
from edgeslim.train.distributed import is_main_process

CHECK_AFTER_EPOCHS = 3
MARGIN = 0.02  # accuracy within 2 points of 1/num_classes counts as chance


def chance_level(num_classes: int) -> float:
    """Top-1 of guessing uniformly among ``num_classes`` classes."""
    return 1.0 / max(1, num_classes)


@dataclass
class ChanceGuard:
    """Called with the history after every epoch (``Trainer(on_epoch=...)``).

    It checks the validation top-1 (the train top-1 when there is no validation split)
    after epoch ``min(after_epochs, epochs)`` and again after the last epoch.

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

    def __call__(self, history: list[dict]) -> None:
        last = history[-1]
        epoch = int(last["epoch"])
        if epoch not in (min(self.after_epochs, self.epochs), self.epochs):
            return
        acc = last.get("val_top1")
        split = "validation"
        if acc is None:
            acc, split = last["train_top1"], "training"
        chance = chance_level(self.num_classes)
        if acc > chance + self.margin:
            return
        text = (
            f"{split} top-1 is {100 * acc:.1f}% after {epoch} epoch(s), chance level for "
            f"{self.num_classes} classes ({100 * chance:.1f}%): the model is not learning. "
            "Check that labels match images, try --lr auto or a lower --lr, "
            "or a longer --warmup-epochs"
        )
        if self.strict:
            raise EdgeslimError(text)
        self.warned = True
        if is_main_process():
            print(f"edgeslim: warning: {text}", file=sys.stderr, flush=True)
