"""CP of a k x k convolution: 1x1 (C -> R) -> kh x 1 depthwise -> 1 x kw depthwise -> 1x1 (R -> O).

Lebedev et al., "Speeding-up Convolutional Neural Networks Using Fine-tuned
CP-Decomposition", ICLR 2015. The kernel ``W`` (``O x C x kh x kw``) is
approximated by ``R`` rank-one terms,

    W[o, c, i, j] ~= sum_r lambda_r A_o[o, r] A_c[c, r] A_h[i, r] A_w[j, r],

fitted by tensorly's ``parafac`` (alternating least squares). ALS is known to be
unstable here (Lebedev et al. section 3.1), so the start is the deterministic SVD
initialisation with a fixed ``random_state`` for the columns it has to pad, and
the fit is checked: a run that stops at ``n_iter_max`` without meeting ``tol``
warns with its relative error, and a relative error above ``max_rel_error``
raises. The 1x1 convs hold ``A_c^T`` and ``lambda * A_o`` (with the bias); the two
depthwise convs hold ``A_h`` and ``A_w`` with the layer's stride, padding and
dilation split by axis. Parameters: ``R (C + kh + kw + O)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import MethodConfig, register_method
from edgeslim.lowrank.ranks import RankRule, matrix_rank, ratio_rank
from edgeslim.lowrank.swap import (
    Factorization,
    Factorized,
    as_numpy,
    check_conv,
    n_params,
    one_blas_thread,
    relative_error,
)


class CPNotConvergedWarning(UserWarning):
    """ALS stopped at its iteration limit; the message gives the relative error reached."""


@dataclass(frozen=True)
class CPConfig(MethodConfig):
    """CP of every k x k ``nn.Conv2d`` (groups 1, k > 1).

    Args:
        rule: the rank rule; ``energy`` and ``vbmf`` use the larger rank of the two
            channel unfoldings (a CP rank is at least each unfolding's rank),
            ``ratio`` the parameter count ``R (C + kh + kw + O)``.
        n_iter_max: ALS sweeps at most.
        tol: ALS stops when the relative error changes by less than this.
        max_rel_error: raise when ``||W - W_cp|| / ||W||`` ends above this (None: never).
        random_state: the seed of the columns the SVD start pads with (R > a mode's size).

    Example:
        >>> from edgeslim.core.methods import apply
        >>> m = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1))
        >>> new, rec = apply(m, CPConfig(RankRule(rank=6), max_rel_error=1.0))
        >>> [tuple(c.weight.shape) for c in new[0]]
        [(6, 8, 1, 1), (6, 1, 3, 1), (6, 1, 1, 3), (16, 6, 1, 1)]
    """

    rule: RankRule = field(default_factory=lambda: RankRule(ratio=0.5))
    n_iter_max: int = 500
    tol: float = 1e-6
    max_rel_error: float | None = None
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.n_iter_max < 1:
            raise EdgeslimError(f"n_iter_max must be >= 1, got {self.n_iter_max}")
        if self.max_rel_error is not None and self.max_rel_error <= 0:
            raise EdgeslimError(f"max_rel_error must be > 0, got {self.max_rel_error}")


def structure(conv: nn.Conv2d, rank: int) -> nn.Sequential:
    """1x1 (C -> R) -> kh x 1 depthwise -> 1 x kw depthwise -> 1x1 (R -> O)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
    )
    r = rank
    return nn.Sequential(
        nn.Conv2d(conv.in_channels, r, 1, bias=False),
        nn.Conv2d(r, r, (kh, 1), (sh, 1), (ph, 0), (dh, 1), groups=r, bias=False),
        nn.Conv2d(r, r, (1, kw), (1, sw), (0, pw), (1, dw), groups=r, bias=False),
        nn.Conv2d(r, conv.out_channels, 1, bias=conv.bias is not None),
    )


def cost(conv: nn.Conv2d, rank: int) -> int:
    kh, kw = conv.kernel_size
    return rank * (conv.in_channels + kh + kw + conv.out_channels)


def rank_of(conv: nn.Conv2d, config: CPConfig) -> int:
    """The CP rank ``config.rule`` gives ``conv``'s kernel."""
    check_conv(conv, min_kernel=2)
    rule, w = config.rule, as_numpy(conv.weight)
    o, c = w.shape[:2]
    if rule.rank is not None:
        return rule.rank  # CP ranks may exceed every side of the kernel
    if rule.ratio is not None:
        return ratio_rank(lambda r: cost(conv, r), w.size, rule.ratio, w.size)
    r_out = matrix_rank(rule, w.reshape(o, -1), lambda r: r, w.size)
    r_in = matrix_rank(rule, np.moveaxis(w, 1, 0).reshape(c, -1), lambda r: r, w.size)
    return max(r_out, r_in)


def fit(w: np.ndarray, rank: int, config: CPConfig) -> tuple[np.ndarray, list[np.ndarray], int]:
    """``(weights, [A_o, A_c, A_h, A_w], iterations)`` of the CP fit of ``w``."""
    import tensorly as tl
    from tensorly.decomposition import parafac

    with tl.backend_context("numpy"), one_blas_thread(), warnings.catch_warnings():
        # the SVD start pads modes smaller than the rank with seeded random columns
        warnings.filterwarnings("ignore", message="Trying to compute SVD with n_eigenvecs")
        cp, errors = parafac(
            w,
            rank,
            n_iter_max=config.n_iter_max,
            init="svd",
            tol=config.tol,
            random_state=config.random_state,
            return_errors=True,
        )
    return np.asarray(cp.weights), [np.asarray(f) for f in cp.factors], len(errors)


def factorize(conv: nn.Conv2d, config: CPConfig) -> Factorized:
    """CP of ``conv`` at the rank ``config.rule`` gives; warns or raises on a poor fit."""
    rank = rank_of(conv, config)
    w = as_numpy(conv.weight)
    lam, (a_o, a_c, a_h, a_w), iters = fit(w, rank, config)
    if not all(np.isfinite(f).all() for f in (lam, a_o, a_c, a_h, a_w)):
        raise EdgeslimError(f"CP at rank {rank} diverged (NaN or Inf factors)")
    seq = structure(conv, rank)
    dtype = conv.weight.dtype

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)

    with torch.no_grad():
        seq[0].weight.copy_(t(a_c.T[:, :, None, None]))
        seq[1].weight.copy_(t(a_h.T[:, None, :, None]))
        seq[2].weight.copy_(t(a_w.T[:, None, None, :]))
        seq[3].weight.copy_(t((a_o * lam[None, :])[:, :, None, None]))
        if conv.bias is not None:
            seq[3].bias.copy_(conv.bias)
    err = relative_error(conv.weight, kernel(seq))
    converged = iters < config.n_iter_max
    if config.max_rel_error is not None and err > config.max_rel_error:
        raise EdgeslimError(
            f"CP at rank {rank}: relative error {err:.3g} > max_rel_error "
            f"{config.max_rel_error} after {iters} ALS sweeps (raise the rank or the limit)"
        )
    if not converged:
        warnings.warn(
            f"CP at rank {rank} did not converge in {iters} ALS sweeps "
            f"(relative error {err:.3g}); raise n_iter_max or tol",
            CPNotConvergedWarning,
            stacklevel=2,
        )
    extra = {"als_sweeps": iters, "converged": converged}
    return Factorized(seq, rank, n_params(conv), n_params(seq), err, extra)


def kernel(seq: nn.Sequential) -> torch.Tensor:
    """The k x k kernel the four convs compute together (float64)."""
    a_c = seq[0].weight.double()[:, :, 0, 0]  # R x C
    a_h = seq[1].weight.double()[:, 0, :, 0]  # R x kh
    a_w = seq[2].weight.double()[:, 0, 0, :]  # R x kw
    a_o = seq[3].weight.double()[:, :, 0, 0]  # O x R
    return torch.einsum("or,rc,ri,rj->ocij", a_o, a_c, a_h, a_w)


@register_method(CPConfig, "lowrank_cp")
class CP(Factorization):
    """Swaps each selected k x k ``nn.Conv2d`` for its CP chain."""

    supported = (nn.Conv2d,)
    factorize = staticmethod(factorize)
    structure = staticmethod(structure)
    rank_of = staticmethod(rank_of)
