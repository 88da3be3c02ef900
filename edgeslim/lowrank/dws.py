"""Depthwise-separable replacement of a k x k conv: k x k depthwise (C -> C m) -> 1x1 (C m -> O).

Howard et al., "MobileNets", 2017 (the separable form); as a rewrite of a trained
conv: Guo et al., "Network Decoupling: From Regular to Depthwise Separable
Convolutions", BMVC 2018, who show that each input channel's slice of the kernel
splits by SVD. For input channel ``c`` the slice ``W[:, c]`` reshaped to
``O x (kh kw)`` is approximated by rank ``m`` (the depth multiplier):

    W[:, c] ~= P_c D_c,   P_c = U_c,m S_c,m  (O x m),   D_c = V_c,m^T  (m x kh kw),

which by Eckart–Young is the least-squares optimum of the separable form, so
the initialisation needs no data; a distillation fine-tune follows in the
workflows. The depthwise conv (``groups = C``, ``C m`` outputs, channel
``c m + t`` reading input ``c``) holds ``D`` with the layer's geometry; the 1x1
conv holds ``P`` and the bias. At ``m = min(O, kh kw)`` the product is exact.
Parameters: ``C m (kh kw + O)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import MethodConfig, register_method
from edgeslim.lowrank.ranks import RankRule, ratio_rank
from edgeslim.lowrank.swap import (
    Factorization,
    Factorized,
    as_numpy,
    check_conv,
    n_params,
    relative_error,
)


@dataclass(frozen=True)
class DWSConfig(MethodConfig):
    """Replace every k x k ``nn.Conv2d`` (groups 1, k > 1) by depthwise + pointwise.

    ``rule.rank`` is the depth multiplier ``m``; ``energy`` keeps that fraction of
    the squared singular values summed over all input channels; ``ratio`` bounds
    the parameters; ``vbmf`` is refused (each slice has only ``kh kw`` columns).

    Example:
        >>> from edgeslim.core.methods import apply
        >>> m = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1))
        >>> new, rec = apply(m, DWSConfig(RankRule(rank=1)))
        >>> [(tuple(c.weight.shape), c.groups) for c in new[0]]
        [((8, 1, 3, 3), 8), ((16, 8, 1, 1), 1)]
    """

    rule: RankRule = field(default_factory=lambda: RankRule(rank=1))

    def __post_init__(self) -> None:
        if self.rule.vbmf:
            raise EdgeslimError("the depthwise-separable rewrite has no VBMF rank; use rank")


def structure(conv: nn.Conv2d, rank: int) -> nn.Sequential:
    """k x k depthwise (C -> C rank, the conv's geometry) -> 1x1 (C rank -> O)."""
    c = conv.in_channels
    return nn.Sequential(
        nn.Conv2d(
            c,
            c * rank,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            groups=c,
            bias=False,
        ),
        nn.Conv2d(c * rank, conv.out_channels, 1, bias=conv.bias is not None),
    )


def _slices(w: np.ndarray) -> np.ndarray:
    """One ``O x (kh kw)`` matrix per input channel: ``C x O x (kh kw)``."""
    o, c, kh, kw = w.shape
    return w.transpose(1, 0, 2, 3).reshape(c, o, kh * kw)


def rank_of(conv: nn.Conv2d, config: DWSConfig) -> int:
    """The depth multiplier ``config.rule`` gives ``conv``."""
    check_conv(conv, min_kernel=2)
    o, c, kh, kw = conv.weight.shape
    max_rank = min(o, kh * kw)
    rule = config.rule
    if rule.rank is not None:
        return min(rule.rank, max_rank)
    if rule.energy is not None:  # the same m for every channel
        s = np.linalg.svd(_slices(as_numpy(conv.weight)), compute_uv=False)
        return _energy_multiplier(s, rule.energy)
    return ratio_rank(lambda r: c * r * (kh * kw + o), o * c * kh * kw, rule.ratio, max_rank)


def factorize(conv: nn.Conv2d, config: DWSConfig) -> Factorized:
    """The least-squares separable form of ``conv`` at depth multiplier ``m``."""
    m = rank_of(conv, config)
    w = as_numpy(conv.weight)
    o, c, kh, kw = w.shape
    u, s, vt = np.linalg.svd(_slices(w), full_matrices=False)  # batched over c
    dw = vt[:, :m, :].reshape(c * m, 1, kh, kw)  # row c m + t = t-th right vector of slice c
    pw = (u[:, :, :m] * s[:, None, :m]).transpose(1, 0, 2).reshape(o, c * m)
    seq = structure(conv, m)
    dtype = conv.weight.dtype
    with torch.no_grad():
        seq[0].weight.copy_(torch.from_numpy(np.ascontiguousarray(dw)).to(dtype))
        seq[1].weight.copy_(torch.from_numpy(np.ascontiguousarray(pw)[:, :, None, None]).to(dtype))
        if conv.bias is not None:
            seq[1].bias.copy_(conv.bias)
    err = relative_error(conv.weight, kernel(seq))
    return Factorized(seq, m, n_params(conv), n_params(seq), err)


def _energy_multiplier(s: np.ndarray, energy: float) -> int:
    """The smallest m whose per-channel top-m squared singular values keep ``energy``."""
    sq = s.astype(np.float64) ** 2  # c x min(O, kh kw), each row sorted descending
    total = sq.sum()
    if total <= 0:
        return 1
    kept = np.cumsum(sq.sum(axis=0)) / total
    return max(1, int(np.searchsorted(kept, energy - 1e-12) + 1))


def kernel(seq: nn.Sequential) -> torch.Tensor:
    """The k x k kernel depthwise + pointwise compute together (float64)."""
    dw = seq[0].weight.double()[:, 0]  # C m x kh x kw
    pw = seq[1].weight.double()[:, :, 0, 0]  # O x C m
    c = seq[0].groups
    m = dw.shape[0] // c
    return torch.einsum("oct,cthw->ochw", pw.reshape(-1, c, m), dw.reshape(c, m, *dw.shape[1:]))


@register_method(DWSConfig, "lowrank_dws")
class DepthwiseSeparable(Factorization):
    """Swaps each selected k x k ``nn.Conv2d`` for depthwise + pointwise."""

    supported = (nn.Conv2d,)
    factorize = staticmethod(factorize)
    structure = staticmethod(structure)
    rank_of = staticmethod(rank_of)
