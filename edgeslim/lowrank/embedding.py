"""ALBERT's factorized embedding: ``Embedding(V, H)`` -> ``Embedding(V, E)``, ``Linear(E, H)``.

Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
Representations", ICLR 2020, Section 3.1: the vocabulary embedding is projected
through a small space ``E``, so its parameters fall from ``V H`` to ``V E + E H``.
As a rewrite of a *trained* model, the factors are the truncated SVD of the
embedding table ``W = U S V^T`` (``V x H``): the new table holds ``U_E S_E`` and the
projection ``V_E^T``, the best rank-``E`` table by Eckart–Young; distillation from
the original model then recovers what the truncation lost.

What it buys: parameters and size on disk. An embedding lookup is a gather, so
the model computes one extra ``E x H`` matmul per token: not a speedup.
Only the layers named in ``names`` (by their last name part) are factorized:
ALBERT factorizes the word embeddings, not the position or segment tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from edgeslim.core.errors import UnsupportedLayerError
from edgeslim.core.methods import MethodConfig, register_method
from edgeslim.lowrank.ranks import RankRule, energy_kept, matrix_rank
from edgeslim.lowrank.swap import Factorization, Factorized, as_numpy, n_params, relative_error


@dataclass(frozen=True)
class EmbeddingFactorConfig(MethodConfig):
    """Factorize the embedding tables named ``names`` (empty: every ``nn.Embedding``).

    Example:
        >>> from edgeslim.core.methods import apply
        >>> m = nn.Sequential(nn.Embedding(1000, 64))
        >>> new, rec = apply(m, EmbeddingFactorConfig(RankRule(rank=16), names=()))
        >>> [type(l).__name__ for l in new[0]], rec.details["layers"]["0"]["params_after"]
        (['Embedding', 'Linear'], 17024)
    """

    rule: RankRule = field(default_factory=lambda: RankRule(rank=128))
    names: tuple[str, ...] = ("word_embeddings",)


def check_embedding(emb: nn.Module, config: EmbeddingFactorConfig, name: str = "") -> None:
    if type(emb) is not nn.Embedding:
        raise UnsupportedLayerError(f"{type(emb).__name__} is not an nn.Embedding")
    if emb.max_norm is not None or emb.sparse:
        raise UnsupportedLayerError("max_norm or sparse embeddings are not supported")


def structure(emb: nn.Embedding, rank: int) -> nn.Sequential:
    """``Embedding(V, rank)`` -> ``Linear(rank, H, bias=False)``."""
    return nn.Sequential(
        nn.Embedding(emb.num_embeddings, rank, padding_idx=emb.padding_idx),
        nn.Linear(rank, emb.embedding_dim, bias=False),
    )


def rank_of(emb: nn.Embedding, config: EmbeddingFactorConfig) -> int:
    v, h = emb.weight.shape
    return matrix_rank(config.rule, as_numpy(emb.weight), lambda r: r * (v + h), v * h)


def factorize(emb: nn.Embedding, config: EmbeddingFactorConfig) -> Factorized:
    """The truncated SVD of the table at the rank ``config.rule`` gives."""
    check_embedding(emb, config)
    rank = rank_of(emb, config)
    u, s, vt = np.linalg.svd(as_numpy(emb.weight), full_matrices=False)
    seq = structure(emb, rank)
    dtype = emb.weight.dtype
    with torch.no_grad():
        seq[0].weight.copy_(torch.from_numpy(u[:, :rank] * s[None, :rank]).to(dtype))
        seq[1].weight.copy_(torch.from_numpy(vt[:rank].T.copy()).to(dtype))
    w_hat = seq[0].weight.double() @ seq[1].weight.double().T
    return Factorized(
        seq,
        rank,
        n_params(emb),
        n_params(seq),
        relative_error(emb.weight, w_hat),
        {"energy_kept": energy_kept(s, rank)},
    )


@register_method(EmbeddingFactorConfig, "lowrank_embedding")
class EmbeddingFactor(Factorization):
    """Swaps each selected ``nn.Embedding`` for its factorized pair (see the module docstring)."""

    supported = (nn.Embedding,)
    factorize = staticmethod(factorize)
    structure = staticmethod(structure)
    rank_of = staticmethod(rank_of)

    def apply_(self, model, config, layers, calib):
        if config.names:
            wanted = set(config.names)
            keep = layers.filter_fn

            def named(mod, name, _keep=keep):
                return name.rsplit(".", 1)[-1] in wanted and (_keep is None or _keep(mod, name))

            layers.filter_fn = named
        return super().apply_(model, config, layers, calib)
