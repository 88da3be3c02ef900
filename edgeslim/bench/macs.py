"""Exact parameter and MAC counts, overall and per layer.

MACs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts the
multiply-accumulates of convolutions, matmuls and attention exactly for the
shapes actually run (1 MAC = 2 FLOPs). Elementwise ops (BN, ReLU, add) are not
counted, which is the convention papers and peers use.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from edgeslim.core.modes import eval_mode


@dataclass(frozen=True)
class LayerStats:
    name: str
    type: str
    params: int
    macs: int
    zero_fraction: float  # fraction of exactly-zero weights in this layer's own parameters
    weight_shape: tuple[int, ...] | None


def count_params(model: nn.Module) -> int:
    """Number of distinct parameters (shared tensors counted once)."""
    seen = {p.data_ptr(): p.numel() for p in model.parameters()}
    return sum(seen.values())


def count_macs(model: nn.Module, example: torch.Tensor) -> tuple[int, dict[str, int]]:
    """Total MACs of one forward on ``example`` and MACs per module (qualified name).

    Example:
        >>> from torch import nn
        >>> count_macs(nn.Linear(4, 3), torch.zeros(1, 4))[0]
        12
    """
    with eval_mode(model), torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(example)
    per_module: dict[str, int] = {}
    for key, ops in fc.get_flop_counts().items():
        if key == "Global":
            continue
        _, _, name = key.partition(".")  # keys are "<RootClass>.<qualified name>"
        per_module[name] = sum(ops.values()) // 2
    return fc.get_total_flops() // 2, per_module


def zero_fraction(model: nn.Module) -> float:
    """Fraction of exactly-zero entries over all weight tensors (dim >= 2)."""
    zeros = total = 0
    for p in model.parameters():
        if p.dim() >= 2:
            zeros += int((p == 0).sum())
            total += p.numel()
    return zeros / total if total else 0.0


def layer_table(model: nn.Module, per_module_macs: dict[str, int]) -> list[LayerStats]:
    """One row per module that owns parameters directly (conv, linear, norm, embedding, ...)."""
    rows = []
    for name, mod in model.named_modules():
        own = list(mod.parameters(recurse=False))
        if not own:
            continue
        n = sum(p.numel() for p in own)
        z = sum(int((p == 0).sum()) for p in own)
        w = getattr(mod, "weight", None)
        shape = tuple(w.shape) if isinstance(w, torch.Tensor) else None
        rows.append(
            LayerStats(name, type(mod).__name__, n, per_module_macs.get(name, 0), z / n, shape)
        )
    return rows
