"""Weight masks as parametrizations: ``layer.weight`` reads ``original * mask``.

After ``torch.ao.pruning`` (``FakeSparsity``): the mask is a buffer of a
:mod:`torch.nn.utils.parametrize` module, so it is part of the ``state_dict``
(``<layer>.parametrizations.weight.0.mask``) and a checkpoint is complete; the
pruned entries of ``original`` get zero gradient and stay where they were.
:func:`squash_` makes the zeros permanent and gives back plain layers.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from edgeslim.core.errors import EdgeslimError


class WeightMask(nn.Module):
    """The parametrization ``w -> w * mask`` (``mask`` is a 0/1 buffer of ``w``'s shape)."""

    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.detach().clone())

    def forward(self, w: Tensor) -> Tensor:
        return w * self.mask


def base_type(module: nn.Module) -> type:
    """The class of ``module`` before parametrization (``ParametrizedConv2d`` -> ``Conv2d``)."""
    return parametrize.type_before_parametrizations(module)


def mask_of(module: nn.Module) -> WeightMask | None:
    """The :class:`WeightMask` on ``module.weight``, or None."""
    if not parametrize.is_parametrized(module, "weight"):
        return None
    for p in module.parametrizations.weight:
        if isinstance(p, WeightMask):
            return p
    return None


def add_mask_(module: nn.Module, mask: Tensor | None = None) -> WeightMask:
    """Put a mask on ``module.weight`` (all ones when ``mask`` is None), or replace its values."""
    w = module.weight
    if mask is None:
        mask = torch.ones_like(w)
    if tuple(mask.shape) != tuple(w.shape):
        raise EdgeslimError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(w.shape)}")
    existing = mask_of(module)
    mask = mask.to(dtype=w.dtype, device=w.device)
    if existing is not None:
        existing.mask.copy_(mask)
        return existing
    pm = WeightMask(mask)
    parametrize.register_parametrization(module, "weight", pm)
    return pm


def dense_weight(module: nn.Module) -> Tensor:
    """The weight with its mask applied (what the layer computes with), detached."""
    return module.weight.detach()


def masked_layers(model: nn.Module) -> dict[str, nn.Module]:
    """``{name: layer}`` of every layer that carries a :class:`WeightMask`."""
    return {n: m for n, m in model.named_modules() if mask_of(m) is not None}


def squash_(model: nn.Module) -> nn.Module:
    """Remove every mask in place, keeping ``original * mask``: the zeros become permanent.

    Example:
        >>> lin = nn.Linear(4, 2)
        >>> _ = add_mask_(lin, torch.tensor([[1., 0, 0, 1], [0, 1, 1, 0]]))
        >>> int((squash_(lin).weight == 0).sum()), type(lin).__name__
        (4, 'Linear')
    """
    for _, mod in list(model.named_modules()):
        if mask_of(mod) is not None:
            _unparametrize(mod)
    return model


def _unparametrize(mod: nn.Module) -> None:
    """``remove_parametrizations(mod, "weight", leave_parametrized=True)``, copy-safe.

    torch's version deletes the ``weight`` property from the module's generated
    class, which a deep copy shares with the original: squashing a copy would
    break the original. Here only this instance changes class.
    """
    pl = mod.parametrizations
    if set(pl.keys()) != {"weight"} or len(pl.weight) != 1:  # other parametrizations too
        parametrize.remove_parametrizations(mod, "weight", leave_parametrized=True)
        return
    original = pl.weight.original
    with torch.no_grad():
        w = pl.weight[0](original)
    cls = parametrize.type_before_parametrizations(mod)
    del mod._modules["parametrizations"]
    mod.__class__ = cls
    mod.weight = nn.Parameter(w.detach().clone(), requires_grad=original.requires_grad)


def squashed(model: nn.Module) -> nn.Module:
    """A squashed deep copy of ``model`` (the caller's model keeps its masks)."""
    return squash_(copy.deepcopy(model))


def sparsity_of(model: nn.Module, names: list[str] | None = None) -> float:
    """Fraction of exact zeros in the weights of the masked layers (or of ``names``)."""
    layers = dict(model.named_modules())
    names = list(masked_layers(model)) if names is None else names
    zeros = total = 0
    for n in names:
        w = layers[n].weight.detach()
        zeros += int((w == 0).sum())
        total += w.numel()
    return zeros / total if total else 0.0
