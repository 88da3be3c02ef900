"""Fold BatchNorm into the preceding convolution or linear layer.

Jacob et al. 2018, Section 3.2 (and Krishnamoorthi, arXiv:1806.08342, Section 3.2):
in inference ``BN(W x + b) = gamma (W x + b - mu) / sqrt(var + eps) + beta``, so
``W' = W * gamma / sqrt(var + eps)`` per output channel and
``b' = (b - mu) * gamma / sqrt(var + eps) + beta``. Quantizing ``W'`` (not ``W``) is
what an integer runtime executes, so folding must happen before calibration.

Pairs are found on the ``torch.export`` capture that pruning and quantizer
placement also read (:class:`edgeslim.graph.calls.ModelGraph`): a conv whose only
user is a BN, each called once. Without an example input to capture with, or when
the capture fails, only adjacent children of ``nn.Sequential`` are paired, and a
warning says so.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import fx, nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.select import swap_module_
from edgeslim.graph.calls import ModelGraph

_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_FOLDABLE_OPS = {"conv1d", "conv2d", "conv3d", "linear"}


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


def conv_bn_pairs(
    model: nn.Module, example: torch.Tensor | None = None, *, graph: ModelGraph | None = None
) -> list[tuple[str, str]]:
    """``(conv name, bn name)`` pairs where the BN directly and only consumes the conv.

    Read from the ``torch.export`` capture of ``model`` on ``example`` (or from
    ``graph``, a capture already made). Without either, or when the model cannot be
    captured, only adjacent children of ``nn.Sequential`` are paired, with a warning.
    """
    if graph is None and example is not None:
        try:
            graph = ModelGraph.of(model, example)
        except EdgeslimError as e:
            warnings.warn(f"{e}; folding only conv->BN neighbours in nn.Sequential", stacklevel=2)
    if graph is None:
        if example is None:
            warnings.warn(
                "no example input to capture the model: folding only conv->BN neighbours "
                "in nn.Sequential",
                stacklevel=2,
            )
        return _sequential_pairs(model)
    return [(c, b) for c, b, _ in _graph_pairs(model, graph)]


def _graph_pairs(model: nn.Module, g: ModelGraph) -> list[tuple[str, str, fx.Node]]:
    """``(conv, bn, bn node)``: each module called once, the conv's output read by the BN only."""
    mods = dict(model.named_modules())
    pairs = []
    for node in g.ops():
        bn = g.scope(node).path
        if g.name(node) != "batch_norm" or not isinstance(mods.get(bn), _BN):
            continue
        src = node.args[0]
        if not isinstance(src, fx.Node) or src.op != "call_function" or len(src.users) != 1:
            continue
        conv = g.scope(src).path  # the conv's own op, whatever feeds its weight
        if (
            g.name(src) in _FOLDABLE_OPS
            and isinstance(mods.get(conv), _FOLDABLE)
            and g.calls[conv] == 1
            and g.calls[bn] == 1
        ):
            pairs.append((conv, bn, node))
    return pairs


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


def fold_bn_(
    model: nn.Module,
    example: torch.Tensor | None = None,
    *,
    graph: ModelGraph | None = None,
    pairs: list[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """Fold every conv->BN pair of ``model`` in place (BN becomes ``nn.Identity``).

    Pairs come from the ``torch.export`` capture on ``example`` (or ``graph``); see
    :func:`conv_bn_pairs`. When ``graph`` is given, each folded BN node is removed
    from it, so that the same capture describes the folded model afterwards.
    ``pairs`` folds exactly those ``(conv, bn)`` names, with no capture (replaying
    a fold recorded earlier, e.g. when a saved model is rebuilt).
    Returns the folded ``(conv, bn)`` names. The model keeps its class and forward.

    Example:
        >>> m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
        >>> fold_bn_(m, torch.randn(1, 3, 8, 8))
        [('0', '1')]
        >>> type(m[1]).__name__
        'Identity'
    """
    if pairs is not None:
        pairs = [(str(c), str(b)) for c, b in pairs]
    elif graph is not None:
        found = _graph_pairs(model, graph)
        for _, _, node in found:
            graph.bypass(node)
        pairs = [(c, b) for c, b, _ in found]
    else:
        pairs = conv_bn_pairs(model, example)
    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        swap_module_(model, conv_name, fold_conv_bn(conv, bn))
        swap_module_(model, bn_name, nn.Identity())
    return pairs


def fold_bn(model: nn.Module, example: torch.Tensor | None = None) -> nn.Module:
    """A folded copy of ``model``; the caller's model is not modified."""
    out = copy.deepcopy(model)
    fold_bn_(out, example)
    return out
