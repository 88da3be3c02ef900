"""Head-prunable multi-head attention, a drop-in for ``nn.MultiheadAttention``.

``nn.MultiheadAttention`` packs query/key/value into one ``in_proj_weight`` of
``3*embed_dim`` rows and ties the inner width to ``embed_dim``, so whole heads
cannot be removed from it. :func:`convert_mha_` swaps each one for
:class:`HeadPrunableMHA`, which computes the same function with separate
``q_proj``/``k_proj``/``v_proj``/``out_proj`` layers whose inner width is
``num_heads * head_dim`` and may shrink (Michel et al., "Are Sixteen Heads Really
Better than One?", NeurIPS 2019). A saved-model codec rebuilds it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class HeadPrunableMHA(nn.Module):
    """Multi-head attention with an inner width of ``num_heads * head_dim``.

    Supports ``forward(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False)`` like the original.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        head_dim: int,
        *,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        kdim: int | None = None,
        vdim: int | None = None,
    ) -> None:
        super().__init__()
        inner = num_heads * head_dim
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, head_dim
        self.batch_first, self.dropout = batch_first, dropout
        self.q_proj = nn.Linear(embed_dim, inner, bias=bias)
        self.k_proj = nn.Linear(kdim or embed_dim, inner, bias=bias)
        self.v_proj = nn.Linear(vdim or embed_dim, inner, bias=bias)
        self.out_proj = nn.Linear(inner, embed_dim, bias=bias)

    @classmethod
    def from_mha(cls, m: nn.MultiheadAttention) -> HeadPrunableMHA:
        e, h = m.embed_dim, m.num_heads
        new = cls(
            e,
            h,
            e // h,
            bias=m.in_proj_bias is not None,
            batch_first=m.batch_first,
            dropout=m.dropout,
            kdim=m.kdim,
            vdim=m.vdim,
        )
        with torch.no_grad():
            if m._qkv_same_embed_dim:
                wq, wk, wv = m.in_proj_weight.chunk(3)
            else:
                wq, wk, wv = m.q_proj_weight, m.k_proj_weight, m.v_proj_weight
            for lin, w in zip((new.q_proj, new.k_proj, new.v_proj), (wq, wk, wv), strict=True):
                lin.weight.copy_(w)
            if m.in_proj_bias is not None:
                for lin, b in zip(
                    (new.q_proj, new.k_proj, new.v_proj), m.in_proj_bias.chunk(3), strict=True
                ):
                    lin.bias.copy_(b)
            new.out_proj.weight.copy_(m.out_proj.weight)
            if m.out_proj.bias is not None:
                new.out_proj.bias.copy_(m.out_proj.bias)
        if m.bias_k is not None or m.add_zero_attn:
            raise NotImplementedError("add_bias_kv / add_zero_attn are not supported")
        return new.train(m.training)

    @staticmethod
    def fix_heads(m: HeadPrunableMHA) -> None:
        m.num_heads = m.q_proj.out_features // m.head_dim

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        b, lq, _ = query.shape
        lk = key.shape[1]
        q = self.q_proj(query).view(b, lq, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(key).view(b, lk, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(value).view(b, lk, -1, self.head_dim).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) * self.head_dim**-0.5
        mask = _merge_masks(attn_mask, key_padding_mask, is_causal, lq, lk, query)
        if mask is not None:
            scores = scores + mask
        attn = scores.softmax(-1)
        attn_d = F.dropout(attn, self.dropout, self.training)
        out = (attn_d @ v).transpose(1, 2).reshape(b, lq, -1)
        out = self.out_proj(out)
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, attn.mean(1) if average_attn_weights else attn


def _merge_masks(attn_mask, key_padding_mask, is_causal, lq, lk, like) -> Tensor | None:
    mask = None
    if is_causal and attn_mask is None:
        attn_mask = torch.ones(lq, lk, dtype=torch.bool, device=like.device).triu(1)
    for m, shape in ((attn_mask, None), (key_padding_mask, "kpm")):
        if m is None:
            continue
        if m.dtype == torch.bool:
            m = torch.zeros(m.shape, dtype=like.dtype, device=like.device).masked_fill(
                m, float("-inf")
            )
        if shape == "kpm":
            m = m[:, None, None, :]
        elif m.dim() == 3:  # (batch*heads, lq, lk)
            m = m.view(like.shape[0], -1, lq, lk)
        mask = m if mask is None else mask + m
    return mask


def convert_mha_(model: nn.Module) -> nn.Module:
    """Swap every ``nn.MultiheadAttention`` in ``model`` for :class:`HeadPrunableMHA`."""
    for mod in list(model.modules()):
        for child_name, child in list(mod.named_children()):
            if type(child) is nn.MultiheadAttention:
                setattr(mod, child_name, HeadPrunableMHA.from_mha(child))
    return model
