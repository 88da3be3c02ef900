"""Automated gradual pruning (AGP; Zhu & Gupta 2017, "To prune, or not to prune").

Sparsity rises from ``s_i`` to ``s_f`` over ``n`` pruning steps spaced ``Δt`` apart,
starting at step ``t0``:

    s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n Δt))^3,   t in {t0, t0 + Δt, ..., t0 + n Δt}

fast at first, while there are many redundant weights, and slowly near the end.
Between pruning steps the sparsity holds; before ``t0`` it is ``s_i``, after the
last step ``s_f``.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeslim.core.errors import EdgeslimError


@dataclass(frozen=True)
class AGPSchedule:
    """The cubic AGP schedule, in optimizer steps.

    Args:
        final: ``s_f``, the sparsity reached at ``start + steps * every``.
        steps: ``n``, the number of pruning steps (>= 1).
        every: ``Δt``, optimizer steps between two pruning steps (>= 1).
        start: ``t0``, the step of the first pruning step.
        initial: ``s_i``, the sparsity of the first pruning step.

    Example:
        >>> s = AGPSchedule(final=0.8, steps=4, every=10)
        >>> [round(s.sparsity_at(t), 4) for t in (0, 10, 25, 40, 99)]
        [0.0, 0.4625, 0.7, 0.8, 0.8]
    """

    final: float
    steps: int
    every: int = 1
    start: int = 0
    initial: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.initial <= self.final < 1.0:
            raise EdgeslimError(
                f"AGP needs 0 <= initial <= final < 1, got {self.initial} and {self.final}"
            )
        if self.steps < 1 or self.every < 1 or self.start < 0:
            raise EdgeslimError("AGP needs steps >= 1, every >= 1 and start >= 0")

    @property
    def end(self) -> int:
        """The step of the last pruning step, ``t0 + n Δt``."""
        return self.start + self.steps * self.every

    def is_update(self, t: int) -> bool:
        """True when step ``t`` is a pruning step (masks are recomputed)."""
        return self.start <= t <= self.end and (t - self.start) % self.every == 0

    def sparsity_at(self, t: int, final: float | None = None) -> float:
        """``s_t`` (held between pruning steps); ``final`` replaces ``s_f`` (a layer override)."""
        s_f = self.final if final is None else final
        s_i = min(self.initial, s_f)
        if t < self.start:
            return s_i
        t = min(t, self.end)
        last = self.start + (t - self.start) // self.every * self.every
        frac = (last - self.start) / (self.steps * self.every)
        return s_f + (s_i - s_f) * (1.0 - frac) ** 3
