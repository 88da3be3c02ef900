"""Truncated SVD of a fully connected layer: ``Linear(I, O)`` -> ``Linear(I, r), Linear(r, O)``.

Denton et al., "Exploiting Linear Structure Within Convolutional Networks for
Efficient Evaluation", NeurIPS 2014 (section 3.2); Xue et al., "Restructuring of
deep neural network acoustic models with singular value decomposition", 2013.

``W = U S V^T`` (``O x I``); keeping the ``r`` largest singular values, the first
layer holds ``sqrt(S_r) V_r^T`` and the second ``U_r sqrt(S_r)`` plus the bias, so
both factors have the same scale. By Eckart–Young the weight error is the
smallest any rank-``r`` product can have:
``||W - W_r||_F = sqrt(sum_{i>r} s_i^2)``. Parameters: ``r (I + O)`` against ``I O``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from edgeslim.core.methods import MethodConfig, register_method
from edgeslim.lowrank.ranks import RankRule, energy_kept, matrix_rank
from edgeslim.lowrank.swap import (
    Factorization,
    Factorized,
    as_numpy,
    check_linear,
    n_params,
    relative_error,
)


@dataclass(frozen=True)
class SVDConfig(MethodConfig):
    """Factorize every ``nn.Linear`` by truncated SVD, its rank chosen by ``rule``.

    Example:
        >>> from edgeslim.core.methods import apply
        >>> m = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
        >>> new, rec = apply(m, SVDConfig(RankRule(rank=8)))
        >>> [type(l).__name__ for l in new[0]], rec.details["layers"]["0"]["rank"]
        (['Linear', 'Linear'], 8)
    """

    rule: RankRule = field(default_factory=lambda: RankRule(energy=0.9))


def structure(linear: nn.Linear, rank: int) -> nn.Sequential:
    """``Linear(I, rank, bias=False)`` -> ``Linear(rank, O)`` (bias as the layer's)."""
    return nn.Sequential(
        nn.Linear(linear.in_features, rank, bias=False),
        nn.Linear(rank, linear.out_features, bias=linear.bias is not None),
    )


def rank_of(linear: nn.Linear, config: SVDConfig) -> int:
    """The rank ``config.rule`` gives ``linear``'s weight."""
    check_linear(linear)
    o, i = linear.weight.shape
    return matrix_rank(config.rule, as_numpy(linear.weight), lambda r: r * (i + o), i * o)


def factorize(linear: nn.Linear, config: SVDConfig) -> Factorized:
    """The truncated SVD of ``linear`` at the rank ``config.rule`` gives."""
    rank = rank_of(linear, config)
    w = as_numpy(linear.weight)
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    root = np.sqrt(s[:rank])
    seq = structure(linear, rank)
    dtype = linear.weight.dtype
    with torch.no_grad():
        seq[0].weight.copy_(torch.from_numpy(root[:, None] * vt[:rank]).to(dtype))
        seq[1].weight.copy_(torch.from_numpy(u[:, :rank] * root[None, :]).to(dtype))
        if linear.bias is not None:
            seq[1].bias.copy_(linear.bias)
    w_hat = seq[1].weight.double() @ seq[0].weight.double()
    return Factorized(
        seq,
        rank,
        n_params(linear),
        n_params(seq),
        relative_error(linear.weight, w_hat),
        {"energy_kept": energy_kept(s, rank)},
    )


@register_method(SVDConfig, "lowrank_svd")
class SVD(Factorization):
    """Swaps each selected ``nn.Linear`` for its two-layer truncated SVD."""

    supported = (nn.Linear,)
    factorize = staticmethod(factorize)
    structure = staticmethod(structure)
    rank_of = staticmethod(rank_of)
