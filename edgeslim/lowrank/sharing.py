"""ALBERT's cross-layer parameter sharing, as a rewrite of a trained transformer.

Lan et al., "ALBERT", ICLR 2020, Section 3.1: every encoder layer uses the same
parameters. Here the stack of identical blocks (a BERT's ``encoder.layer``) is
split into ``groups`` contiguous groups, each of which shares one block (ALBERT
is ``groups=1``; Lan et al. also study groups). The shared block starts as the
elementwise mean of its members (``init="mean"``) or as the first member's
block (``init="first"``); either loses accuracy at once, so sharing is followed
by distillation from the model before it.

The list keeps its length: index ``i`` holds the same module object as the
first index of its group, so the forward pass is unchanged, ``parameters()``
counts each shared tensor once, and the saved weights hold it once.

What it buys: parameters and size on disk. Every layer still runs, so the
compute and the latency are the same: not a speedup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import Method, MethodConfig, register_method


@dataclass(frozen=True)
class LayerSharingConfig(MethodConfig):
    """Share the blocks of a layer stack in ``groups`` contiguous groups.

    Args:
        groups: how many distinct blocks remain (1: all layers share one).
        init: the shared block's start: the ``mean`` of its members, or the ``first``.
        stack: the module path of the ``nn.ModuleList`` (None: the longest list of
            blocks of one type with parameters of the same shapes).

    Example:
        >>> from edgeslim.core.methods import apply
        >>> m = nn.Sequential(nn.ModuleList([nn.Linear(8, 8) for _ in range(4)]))
        >>> new, rec = apply(m, LayerSharingConfig(groups=2))
        >>> rec.details["groups"], new[0][0] is new[0][1], new[0][1] is new[0][2]
        ([[0, 1], [2, 3]], True, False)
    """

    groups: int = 1
    init: Literal["mean", "first"] = "mean"
    stack: str | None = None

    def __post_init__(self) -> None:
        if self.groups < 1:
            raise EdgeslimError(f"sharing needs groups >= 1, got {self.groups}")
        if self.init not in ("mean", "first"):
            raise EdgeslimError(f"init is mean or first, got {self.init!r}")


def _signature(block: nn.Module) -> tuple:
    return type(block), tuple((n, tuple(p.shape)) for n, p in block.named_parameters())


def find_stack(model: nn.Module) -> str:
    """The path of the longest ``nn.ModuleList`` of two or more alike blocks."""
    best, size = None, 1
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > size:
            sigs = {_signature(b) for b in mod}
            if len(sigs) == 1 and next(iter(sigs))[1]:
                best, size = name, len(mod)
    if best is None:
        raise EdgeslimError("no stack of alike layers (an nn.ModuleList of one block type) found")
    return best


def partition(n: int, groups: int) -> list[list[int]]:
    """``groups`` contiguous, near-equal groups of ``range(n)``.

    Example:
        >>> partition(6, 4)
        [[0, 1], [2, 3], [4], [5]]
    """
    if groups > n:
        raise EdgeslimError(f"{groups} groups for a stack of {n} layers")
    return [list(map(int, g)) for g in np.array_split(np.arange(n), groups)]


def _stack(model: nn.Module, path: str) -> nn.ModuleList:
    try:
        mod = model.get_submodule(path)
    except AttributeError:
        raise EdgeslimError(f"no module {path!r} in the model") from None
    if not isinstance(mod, nn.ModuleList):
        raise EdgeslimError(f"{path!r} is a {type(mod).__name__}, not an nn.ModuleList")
    return mod


def _average_into_(base: nn.Module, members: list[nn.Module]) -> None:
    """Set ``base``'s parameters and float buffers to the members' elementwise mean."""
    with torch.no_grad():
        states = [m.state_dict() for m in members]
        for key, value in base.state_dict().items():
            if value.is_floating_point():
                value.copy_(torch.stack([s[key] for s in states]).mean(0))


def link_(stack: nn.ModuleList, groups: list[list[int]]) -> None:
    """Make every index of a group hold the group's first block."""
    for g in groups:
        for i in g[1:]:
            stack[i] = stack[g[0]]


def n_unique_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # shared tensors count once


@register_method(LayerSharingConfig, "albert_sharing")
class LayerSharing(Method):
    """Cross-layer sharing of a block stack (see the module docstring)."""

    def apply_(self, model, config: LayerSharingConfig, layers, calib):
        path = config.stack if config.stack is not None else find_stack(model)
        stack = _stack(model, path)
        if len({_signature(b) for b in stack}) != 1:
            raise EdgeslimError(f"the blocks of {path!r} differ in type or shapes")
        groups = partition(len(stack), config.groups)
        before = n_unique_params(model)
        if config.init == "mean":
            for g in groups:
                _average_into_(stack[g[0]], [stack[i] for i in g])
        link_(stack, groups)
        layers.done(path, config)
        return model, {
            "stack": path,
            "groups": groups,
            "params_before": before,
            "params_after": n_unique_params(model),
        }

    def restore_(self, model, config, layers, details):
        link_(_stack(model, details["stack"]), [list(g) for g in details["groups"]])
        return model
