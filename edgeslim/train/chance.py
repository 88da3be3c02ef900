"""A guard against silent failure: training whose accuracy stays at chance.

Hard data can sit at chance for a few epochs before a network finds its features (on
the generated ``glyphs26`` set the reference loop is at chance until epoch 4 of 15), so the
guard looks after a third of the run, at least :data:`CHECK_AFTER_EPOCHS` epochs, and
at the end. A network still at chance then is rarely going to learn: the usual causes
are labels that do not match the images, inputs normalized very differently from what
the model expects, or a learning rate far too high. The guard says so, and with
``strict`` stops the run with an error.
"""

from __future__ import annotations

import math
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
    after epoch ``max(after_epochs, ceil(epochs / 3))`` (capped at ``epochs``) and again
    after the last epoch.

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
        first = min(max(self.after_epochs, math.ceil(self.epochs / 3)), self.epochs)
        if epoch not in (first, self.epochs):
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
