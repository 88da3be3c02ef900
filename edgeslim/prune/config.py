"""Pruning configuration: one frozen dataclass, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

from edgeslim.core.errors import EdgeslimError
from edgeslim.prune.criteria import CRITERIA


@dataclass(frozen=True)
class PruneConfig:
    """What to remove and how to choose it.

    Exactly one target: ``ratio`` (fraction of channels removed from each group, or
    overall with ``global_ranking``), ``target_macs`` (MACs of the result) or
    ``target_latency_ms`` (ONNX Runtime median at batch 1, measured step by step).

    ``round_to`` makes every kept width a multiple of it; ``"auto"`` derives it from
    the deploy runtime's measured latency staircase (:mod:`edgeslim.prune.align`),
    which is what ``edgeslim prune`` and the recipe stages do by default. The library
    default, 1, keeps exact ratios.

    Example:
        >>> PruneConfig(ratio=0.5, criterion="l1", round_to=8).round_to
        8
    """

    ratio: float | None = None
    target_macs: int | None = None
    target_latency_ms: float | None = None
    criterion: str = "l1"
    global_ranking: bool = False
    overrides: tuple[tuple[str, float], ...] = ()  # (layer name or regex, ratio), first match
    ignore: tuple[str, ...] = ()  # layers (names or regexes) whose output channels stay
    round_to: int | str = 1  # kept channels per group: a multiple of this, or "auto"
    min_channels: int = 1  # never keep fewer units in a group
    max_ratio: float = 0.9  # global ranking never removes more of one group
    seed: int = 0  # for the random criterion
    verify: bool = True  # compare the result with the masked dense model, raise on mismatch
    strict: bool = False  # unsupported op: raise naming the layer (else leave untouched)
    latency_step: float = 0.1  # fraction of MACs removed per latency step
    calib_batches: int = 4  # batches used by data-driven criteria

    def __post_init__(self) -> None:
        targets = [
            t for t in (self.ratio, self.target_macs, self.target_latency_ms) if t is not None
        ]
        if len(targets) != 1:
            raise EdgeslimError("give exactly one of ratio, target_macs, target_latency_ms")
        if self.ratio is not None and not 0 <= self.ratio < 1:
            raise EdgeslimError(f"ratio must be in [0, 1), got {self.ratio}")
        if self.target_macs is not None and self.target_macs <= 0:
            raise EdgeslimError(f"target MACs must be positive, got {self.target_macs}")
        if self.target_latency_ms is not None and self.target_latency_ms <= 0:
            raise EdgeslimError(f"target latency must be positive, got {self.target_latency_ms}")
        if self.round_to != "auto" and (
            not isinstance(self.round_to, int) or isinstance(self.round_to, bool)
        ):
            raise EdgeslimError(f"round_to must be an integer or 'auto', got {self.round_to!r}")
        if (self.round_to != "auto" and self.round_to < 1) or self.min_channels < 1:
            raise EdgeslimError("round_to and min_channels must be >= 1")
        if not 0 < self.max_ratio < 1:
            raise EdgeslimError(f"max_ratio must be in (0, 1), got {self.max_ratio}")
        for _, r in self.overrides:
            if not 0 <= r < 1:
                raise EdgeslimError(f"override ratio must be in [0, 1), got {r}")
        CRITERIA.get(self.criterion)  # unknown names fail here, listing the choices
