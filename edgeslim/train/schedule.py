"""Learning-rate schedules as pure functions of the global step.

A schedule that is a function of the step alone has no state to checkpoint,
which is what makes resume-after-kill exact.
"""

from __future__ import annotations

import math


def lr_at(
    step: int, total_steps: int, base_lr: float, schedule: str, warmup_steps: int = 0
) -> float:
    """Learning rate at optimiser step ``step`` (0-based) of ``total_steps``.

    Example:
        >>> lr_at(0, 100, 0.1, "cosine")
        0.1
        >>> round(lr_at(50, 100, 0.1, "cosine"), 3)
        0.05
    """
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "cosine":
        return 0.5 * base_lr * (1 + math.cos(math.pi * min(1.0, t)))
    if schedule == "step":
        return base_lr * (0.1 ** ((t >= 0.5) + (t >= 0.75)))
    return base_lr
