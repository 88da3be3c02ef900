"""N:M semi-structured sparsity: in every group of M consecutive weights along the
reduction axis, the N largest ``|w|`` are kept (Mishra et al. 2021, "Accelerating
Sparse Deep Neural Networks"; NVIDIA's 2:4).

The reduction axis is the input axis of a GEMM: ``in_features`` for Linear, and
for Conv2d the input channels at each kernel position (the layout of an NHWC /
channels-last implicit GEMM, as NVIDIA's ASP groups them). A layer whose input
width is not a multiple of M (e.g. a stem with 3 input channels) is left dense
and listed under ``skipped``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import register_method
from edgeslim.sparsity.method import MaskMethod, SparsityConfig


@dataclass(frozen=True)
class NMConfig(SparsityConfig):
    """Keep ``n`` of every ``m`` weights along the reduction axis (2:4, 1:4, 4:8).

    Example:
        >>> from torch import nn
        >>> from edgeslim.core.methods import apply_
        >>> m, rec = apply_(nn.Sequential(nn.Linear(8, 4)), NMConfig(2, 4))
        >>> rec.details["sparsity"]
        0.5
    """

    kind: ClassVar[str] = "nm"
    n: int = 2
    m: int = 4

    def __post_init__(self) -> None:
        if not (1 <= self.n < self.m <= 32):
            raise EdgeslimError(f"N:M needs 1 <= n < m <= 32, got {self.n}:{self.m}")

    @property
    def sparsity(self) -> float:
        return 1.0 - self.n / self.m


def reduction_last(w: Tensor) -> Tensor:
    """``w`` as (rows, reduction): Linear ``(out, in)``; Conv ``(out, k..., in)`` flattened."""
    return w.movedim(1, -1).reshape(-1, w.shape[1]) if w.dim() > 2 else w


def nm_mask(w: Tensor, n: int, m: int) -> Tensor:
    """The N:M mask of ``w`` (reduction axis = dim 1); ``w.shape[1]`` must divide by ``m``."""
    rows = reduction_last(w.abs())
    if rows.shape[1] % m:
        raise EdgeslimError(f"reduction width {rows.shape[1]} is not a multiple of m={m}")
    groups = rows.reshape(-1, m)
    keep = torch.topk(groups, n, dim=1, sorted=False).indices
    mask = torch.zeros_like(groups).scatter_(1, keep, 1.0).reshape(rows.shape)
    if w.dim() > 2:  # back to (out, in, k...)
        shape = (w.shape[0], *w.shape[2:], w.shape[1])
        mask = mask.reshape(shape).movedim(-1, 1)
    return mask.contiguous()


@register_method(NMConfig, "nm_sparsity")
class NMSparsity(MaskMethod):
    def masks(self, weights, configs):
        out, skipped = {}, []
        for name, w in weights.items():
            cfg = configs[name]
            if w.shape[1] % cfg.m:
                skipped.append(name)
                continue
            out[name] = nm_mask(w, cfg.n, cfg.m)
        return out, {"skipped": skipped}
