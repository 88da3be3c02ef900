"""Spatial SVD, Jaderberg's scheme 2: k x k conv -> (kh x 1, C -> r) -> (1 x kw, r -> O).

Jaderberg, Vedaldi and Zisserman, "Speeding up Convolutional Neural Networks with
Low Rank Expansions", BMVC 2014 (scheme 2); AIMET calls it spatial SVD. The kernel
``W`` (``O x C x kh x kw``) is reshaped to the matrix

    M[(c, i), (o, j)] = W[o, c, i, j]      ((C kh) x (O kw)),

whose rank-``r`` SVD ``M ~= U_r S_r V_r^T`` gives a vertical conv with weights
``V[t, c, i, 0] = U[(c, i), t] sqrt(s_t)`` and a horizontal conv with
``H[o, t, 0, j] = sqrt(s_t) V^T[t, (o, j)]``. Their composition applies the kernel
``sum_t H[o, t, j] V[t, c, i]``, i.e. ``M_r``, so the weight error is exactly
Eckart–Young's ``sqrt(sum_{t>r} s_t^2)``, and at ``r = min(C kh, O kw)`` exact.
Stride, padding and dilation split by axis (zero padding is separable). Parameters:
``r (C kh + O kw)`` against ``O C kh kw``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from edgeslim.core.errors import UnsupportedLayerError
from edgeslim.core.methods import MethodConfig, register_method
from edgeslim.lowrank.ranks import RankRule, energy_kept, matrix_rank
from edgeslim.lowrank.swap import (
    Factorization,
    Factorized,
    as_numpy,
    check_conv,
    n_params,
    relative_error,
)


@dataclass(frozen=True)
class SpatialSVDConfig(MethodConfig):
    """Split every k x k ``nn.Conv2d`` (groups 1, k > 1) into kh x 1 and 1 x kw convs.

    Example:
        >>> from edgeslim.core.methods import apply
        >>> m = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1))
        >>> new, rec = apply(m, SpatialSVDConfig(RankRule(rank=12)))
        >>> [tuple(c.weight.shape) for c in new[0]]
        [(12, 16, 3, 1), (32, 12, 1, 3)]
    """

    rule: RankRule = field(default_factory=lambda: RankRule(energy=0.9))


def structure(conv: nn.Conv2d, rank: int) -> nn.Sequential:
    """(kh x 1, C -> rank, the vertical geometry) -> (1 x kw, rank -> O, the horizontal one)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
    )
    return nn.Sequential(
        nn.Conv2d(conv.in_channels, rank, (kh, 1), (sh, 1), (ph, 0), (dh, 1), bias=False),
        nn.Conv2d(
            rank, conv.out_channels, (1, kw), (1, sw), (0, pw), (1, dw), bias=conv.bias is not None
        ),
    )


def reshaped(w: np.ndarray) -> np.ndarray:
    """``M[(c, i), (o, j)] = W[o, c, i, j]``: the matrix whose rank is scheme 2's rank."""
    o, c, kh, kw = w.shape
    return w.transpose(1, 2, 0, 3).reshape(c * kh, o * kw)


def rank_of(conv: nn.Conv2d, config: SpatialSVDConfig) -> int:
    """The rank ``config.rule`` gives ``conv``'s reshaped kernel."""
    check_conv(conv, min_kernel=2)
    if min(conv.kernel_size) < 2:
        raise UnsupportedLayerError(f"{conv.kernel_size} kernel is already separable")
    o, c, kh, kw = conv.weight.shape
    m = reshaped(as_numpy(conv.weight))
    return matrix_rank(config.rule, m, lambda r: r * (c * kh + o * kw), o * c * kh * kw)


def factorize(conv: nn.Conv2d, config: SpatialSVDConfig) -> Factorized:
    """Scheme 2 of ``conv`` at the rank ``config.rule`` gives on the reshaped kernel."""
    rank = rank_of(conv, config)
    w = as_numpy(conv.weight)
    o, c, kh, kw = w.shape
    u, s, vt = np.linalg.svd(reshaped(w), full_matrices=False)
    root = np.sqrt(s[:rank])
    vert = (u[:, :rank] * root).reshape(c, kh, rank).transpose(2, 0, 1)[..., None]
    horiz = (root[:, None] * vt[:rank]).reshape(rank, o, kw).transpose(1, 0, 2)[:, :, None, :]
    seq = structure(conv, rank)
    dtype = conv.weight.dtype
    with torch.no_grad():
        seq[0].weight.copy_(torch.from_numpy(np.ascontiguousarray(vert)).to(dtype))
        seq[1].weight.copy_(torch.from_numpy(np.ascontiguousarray(horiz)).to(dtype))
        if conv.bias is not None:
            seq[1].bias.copy_(conv.bias)
    return Factorized(
        seq,
        rank,
        n_params(conv),
        n_params(seq),
        relative_error(conv.weight, kernel(seq)),
        {"energy_kept": energy_kept(s, rank)},
    )


def kernel(seq: nn.Sequential) -> torch.Tensor:
    """The kh x kw kernel the two convs compute together (float64)."""
    vert = seq[0].weight.double()[..., 0]  # r x C x kh
    horiz = seq[1].weight.double()[:, :, 0, :]  # O x r x kw
    return torch.einsum("otj,tci->ocij", horiz, vert)


@register_method(SpatialSVDConfig, "lowrank_spatial")
class SpatialSVD(Factorization):
    """Swaps each selected k x k ``nn.Conv2d`` for its kh x 1 + 1 x kw pair."""

    supported = (nn.Conv2d,)
    factorize = staticmethod(factorize)
    structure = staticmethod(structure)
    rank_of = staticmethod(rank_of)
