"""Fold BatchNorm into the preceding convolution or linear layer.

Jacob et al. 2018, Section 3.2 (and Krishnamoorthi, arXiv:1806.08342, Section 3.2):
in inference ``BN(W x + b) = gamma (W x + b - mu) / sqrt(var + eps) + beta``, so
``W' = W * gamma / sqrt(var + eps)`` per output channel and
``b' = (b - mu) * gamma / sqrt(var + eps) + beta``. Quantizing ``W'`` (not ``W``) is
what an integer runtime executes, so folding must happen before calibration.

Pairs are found on the ``torch.fx`` graph (a conv whose only user is a BN), with a
fallback to adjacent children of ``nn.Sequential`` for models fx cannot trace.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def fold_conv_bn(conv: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """A new layer equal to ``bn(conv(x))`` in eval mode (``conv`` and ``bn`` untouched).

    Example:
        >>> conv, bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4).eval()
        >>> x = torch.randn(1, 3, 8, 8)
        >>> bool(torch.allclose(fold_conv_bn(conv, bn)(x), bn(conv(x)), atol=1e-5))
        True
    """
    fused = copy.deepcopy(conv)
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    factor = gamma / std
    shape = [-1] + [1] * (fused.weight.dim() - 1)
    if isinstance(fused, nn.ConvTranspose2d):  # out channels are dim 1 there
        raise TypeError("transposed convolutions are not folded")
    fused.weight.copy_(fused.weight * factor.reshape(shape))
    bias = fused.bias if fused.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = (bias - bn.running_mean) * factor + beta
    fused.bias = nn.Parameter(new_bias.detach().clone())
    return fused


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """``(conv name, bn name)`` pairs where the BN directly and only consumes the conv."""
    try:
        return _fx_pairs(model)
    except Exception:  # untraceable model: fall back to nn.Sequential neighbours
        return _sequential_pairs(model)


def _fx_pairs(model: nn.Module) -> list[tuple[str, str]]:
    gm = torch.fx.symbolic_trace(model)
    mods = dict(model.named_modules())
    pairs = []
    for node in gm.graph.nodes:
        if node.op != "call_module" or not isinstance(mods.get(node.target), _BN):
            continue
        src = node.args[0]
        if (
            isinstance(src, torch.fx.Node)
            and src.op == "call_module"
            and isinstance(mods.get(src.target), _FOLDABLE)
            and len(src.users) == 1
        ):
            pairs.append((src.target, node.target))
    # a module called twice cannot be folded for one call only
    seen: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            seen[node.target] = seen.get(node.target, 0) + 1
    return [(c, b) for c, b in pairs if seen[c] == 1 and seen[b] == 1]


def _sequential_pairs(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Sequential):
            continue
        kids = list(mod.named_children())
        for (n1, a), (n2, b) in zip(kids, kids[1:], strict=False):
            if isinstance(a, _FOLDABLE) and isinstance(b, _BN):
                prefix = f"{name}." if name else ""
                pairs.append((prefix + n1, prefix + n2))
    return pairs


def fold_bn_(model: nn.Module) -> list[tuple[str, str]]:
    """Fold every conv->BN pair of ``model`` in place (BN becomes ``nn.Identity``).

    Returns the folded ``(conv, bn)`` names. The model keeps its class and forward.

    Example:
        >>> m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
        >>> fold_bn_(m)
        [('0', '1')]
        >>> type(m[1]).__name__
        'Identity'
    """
    pairs = conv_bn_pairs(model)
    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        _set(model, conv_name, fold_conv_bn(conv, bn))
        _set(model, bn_name, nn.Identity())
    return pairs


def fold_bn(model: nn.Module) -> nn.Module:
    """A folded copy of ``model``; the caller's model is not modified."""
    out = copy.deepcopy(model)
    fold_bn_(out)
    return out


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)
