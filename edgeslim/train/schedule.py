"""Learning-rate schedules as pure functions of the global step.

A schedule that is a function of the step alone has no state to checkpoint,
which is what makes resume-after-kill exact.

Every schedule starts with a linear warm-up (Goyal et al., 2017, "Accurate, Large
Minibatch SGD: Training ImageNet in 1 Hour", sec. 2.2): a large learning rate on
freshly initialised weights and batch-norm statistics can throw a network into a
region it never leaves, which on unfamiliar data looks like training stuck at chance.
By default the warm-up is 15% of the run, at most :data:`MAX_AUTO_WARMUP_EPOCHS` epochs;
with the cosine decay that follows this is the one-cycle shape of Smith & Topin (2019)
(``pct_start=0.15``). On the generated ``glyphs26`` data, ResNet-20 at 15 epochs, 10%
(1.5 epochs) left chance late, at 12.4% val top-1 after 7 epochs, and 2.25 epochs reached
41.2% (benchmarks/results/train_heldout.md).
"""

from __future__ import annotations

import math

AUTO_WARMUP_FRACTION = 0.15  # of all steps, when warmup_epochs is None
MAX_AUTO_WARMUP_EPOCHS = 3.0


def warmup_steps(warmup_epochs: float | None, steps_per_epoch: int, total_steps: int) -> int:
    """Optimiser steps of linear warm-up; ``None`` picks the default (see module doc).

    Example:
        >>> warmup_steps(None, 30, 450)  # 15 epochs of 30 steps: 15% of the run
        67
        >>> warmup_steps(None, 30, 3000)  # 100 epochs: capped at 3 epochs
        90
        >>> warmup_steps(0, 30, 450)
        0
    """
    if warmup_epochs is None:
        steps = min(AUTO_WARMUP_FRACTION * total_steps, MAX_AUTO_WARMUP_EPOCHS * steps_per_epoch)
    else:
        steps = warmup_epochs * steps_per_epoch
    return max(0, min(int(steps), total_steps))


def lr_at(
    step: int, total_steps: int, base_lr: float, schedule: str, warmup_steps: int = 0
) -> float:
    """Learning rate at optimiser step ``step`` (0-based) of ``total_steps``.

    The first ``warmup_steps`` steps rise linearly to ``base_lr`` (reaching it on the
    last warm-up step); the schedule then runs over the remaining steps.

    Example:
        >>> lr_at(0, 100, 0.1, "cosine")
        0.1
        >>> round(lr_at(50, 100, 0.1, "cosine"), 3)
        0.05
        >>> lr_at(0, 100, 0.1, "cosine", warmup_steps=10)
        0.01
    """
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "cosine":
        return 0.5 * base_lr * (1 + math.cos(math.pi * min(1.0, t)))
    if schedule == "step":
        return base_lr * (0.1 ** ((t >= 0.5) + (t >= 0.75)))
    return base_lr
