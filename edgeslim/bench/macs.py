"""Exact parameter and MAC counts, overall and per layer.

MACs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts the
multiply-accumulates of convolutions, matmuls and attention exactly for the
shapes actually run (1 MAC = 2 FLOPs). Elementwise ops (BN, ReLU, add) are not
counted, which is the convention papers and peers use.

PyTorch's own counter misses the fused attention kernels that CPU inference runs,
so they are counted here from their shapes (:data:`ATTENTION_FORMULAS`):

- ``nn.MultiheadAttention`` in eval mode without grad takes a "fast path",
  ``aten._native_multi_head_attention``: its projections *and* its attention
  products were counted as 0, while edgeslim's pruned twin
  (:class:`~edgeslim.graph.attention.HeadPrunableMHA`, plain linears and matmuls)
  was counted in full, so pruning a ViT appeared to *add* MACs;
- ``nn.TransformerEncoderLayer``'s fast path, ``aten._transformer_encoder_layer_fwd``;
- ``F.scaled_dot_product_attention`` on CPU (``_scaled_dot_product_flash_attention_for_cpu``),
  used by ``nn.MultiheadAttention`` with ``need_weights=False`` and by transformers' BERT.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

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
    with (
        eval_mode(model),
        torch.no_grad(),
        FlopCounterMode(display=False, custom_mapping=ATTENTION_FORMULAS) as fc,
    ):
        model(example)
    per_module: dict[str, int] = {}
    for key, ops in fc.get_flop_counts().items():
        if key == "Global":
            continue
        _, _, name = key.partition(".")  # keys are "<RootClass>.<qualified name>"
        per_module[name] = sum(ops.values()) // 2
    return fc.get_total_flops() // 2, per_module


def _lengths(t: torch.Tensor) -> list[int]:
    """Sequence length of each batch element of a ``(B, L, E)``, ``(L, E)`` or nested tensor."""
    if t.is_nested:
        return [int(c.shape[0]) for c in t.unbind()]
    return [int(t.shape[-2])] * (int(t.shape[0]) if t.dim() == 3 else 1)


def _attention_macs(lq: int, lk: int, e: int) -> int:
    """q, k, v and output projections (e x e) plus ``QK^T`` and ``AV`` over all heads."""
    return 2 * lq * e * e + 2 * lk * e * e + 2 * lq * lk * e


def _native_mha_flops(query, key, value, embed_dim, *args, out_val=None, **kwargs) -> int:
    macs = sum(
        _attention_macs(lq, lk, int(embed_dim))
        for lq, lk in zip(_lengths(query), _lengths(key), strict=True)
    )
    return 2 * macs


def _encoder_layer_flops(src, embed_dim, num_heads, *args, out_val=None, **kwargs) -> int:
    ffn = int(args[11].shape[0])  # ffn_weight_1: (dim_feedforward, embed_dim)
    e = int(embed_dim)
    return 2 * sum(_attention_macs(n, n, e) + 2 * n * e * ffn for n in _lengths(src))


def _sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


_native_mha_flops._get_raw = True  # these two read tensors (nested ones too), not shapes
_encoder_layer_flops._get_raw = True


def _formulas() -> dict:
    ops = {
        "_native_multi_head_attention": _native_mha_flops,
        "_transformer_encoder_layer_fwd": _encoder_layer_flops,
        "_scaled_dot_product_flash_attention_for_cpu": _sdpa_flops,
    }
    out = {}
    for name, fn in ops.items():
        try:
            out[getattr(torch.ops.aten, name)] = fn
        except AttributeError:  # an older torch without this kernel
            continue
    return out


ATTENTION_FORMULAS = _formulas()


def zero_fraction(model: nn.Module) -> float:
    """Fraction of exactly-zero entries over all weight tensors (dim >= 2).

    A parametrized weight (a sparsity mask) counts as what the layer computes
    with, not as its unmasked ``original``.
    """
    effective, originals = [], set()
    for mod in model.modules():
        if parametrize.is_parametrized(mod):
            for tensor_name, plist in mod.parametrizations.items():
                originals.add(id(plist.original))
                effective.append(getattr(mod, tensor_name).detach())
    tensors = effective + [p for p in model.parameters() if id(p) not in originals]
    zeros = total = 0
    for p in tensors:
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
