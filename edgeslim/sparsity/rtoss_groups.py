"""R-TOSS parent-child layer groups: a depth-first search over the dependency graph.

R-TOSS (Balasubramaniam et al. 2023, "R-TOSS: A Framework for Real-Time Object
Detection using Semi-Structured Pruning") walks the model's graph depth first,
finds *parent* layers and the *child* layers they feed, chooses kernel patterns
on the parent only and applies the same patterns to its children, which cuts
the pattern search and keeps coupled layers consistent.

Here the graph is edgeslim's channel dependency graph
(:func:`edgeslim.graph.groups.build_dependency_graph`): layer ``B`` is a
successor of layer ``A`` when one dependency group holds ``A``'s output channels
and ``B``'s input channels (``B`` reads what ``A`` writes, through BN, ReLU and
residual adds). The search starts at the layers that nothing selected feeds, in
graph order, and visits successors depth first. An unassigned layer it reaches
becomes a parent and claims each of its direct successors that is still
unassigned and has the same weight shape and config: those are its children,
and child kernel ``(o, i)`` takes the pattern chosen for parent kernel ``(o, i)``
(equal shapes make that map exact). A child is never a parent (groups are one
level deep), so in a ResNet basic block ``conv1`` is the parent of ``conv2``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode
from edgeslim.graph.groups import build_dependency_graph


@dataclass
class ParentChild:
    """Parent layer -> its children, in the order the search found them."""

    children: dict[str, list[str]] = field(default_factory=dict)

    @property
    def parent_of(self) -> dict[str, str]:
        """``{child: parent}``."""
        return {c: p for p, cs in self.children.items() for c in cs}

    def to_json(self) -> list[dict]:
        return [{"parent": p, "children": cs} for p, cs in self.children.items() if cs]


def example_input(model: nn.Module, calib: object = None) -> Tensor:
    """One input batch to trace ``model`` with: the first batch of ``calib``, else a guess.

    The guess is ``(1, C, 32, 32)`` with ``C`` the first Conv2d's input channels
    (channel dependencies do not depend on the spatial size of most CNNs).
    """
    if calib is not None:
        first = calib if isinstance(calib, Tensor) else next(iter(calib), None)
        if isinstance(first, list | tuple) and first:
            first = first[0]
        if isinstance(first, Tensor):
            return first[:1]
        raise EdgeslimError("R-TOSS parent-child groups need a tensor batch in calib")
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return torch.zeros(1, m.in_channels, 32, 32)
    raise EdgeslimError("R-TOSS parent-child groups need a model with a Conv2d")


def successors(model: nn.Module, example: Tensor, names: Iterable[str]) -> dict[str, list[str]]:
    """``{layer: layers reading its output channels}`` over ``names``, in graph order."""
    names = list(names)
    keep = set(names)
    try:
        with eval_mode(model), torch.no_grad():
            graph = build_dependency_graph(model, example)
    except Exception as e:  # capture's EdgeslimError and torch.export's own: name the way out
        raise EdgeslimError(
            f"R-TOSS parent-child groups: tracing the model on an input of shape "
            f"{tuple(example.shape)} failed ({type(e).__name__}: {str(e).splitlines()[0]}); "
            "pass calibration data with the model's input, or RTossConfig(parent_child=False)"
        ) from e
    out: dict[str, list[str]] = {n: [] for n in names}
    for g in graph.groups:
        writers = [layer for layer, kind in g.spaces if kind == "out" and layer in keep]
        readers = [layer for layer, kind in g.spaces if kind == "in" and layer in keep]
        for a in writers:
            for b in readers:
                if b != a and b not in out[a]:
                    out[a].append(b)
    return out


def parent_child_groups(succ: dict[str, list[str]], same: dict[str, object]) -> ParentChild:
    """Depth-first search over ``succ``; ``same[layer]`` is what a child must share with
    its parent (its weight shape and config).

    Example:
        >>> succ = {"a": ["b"], "b": ["c", "d"], "c": [], "d": []}
        >>> parent_child_groups(succ, {"a": 1, "b": 1, "c": 1, "d": 2}).children
        {'a': ['b'], 'c': [], 'd': []}
    """
    preds = {b for bs in succ.values() for b in bs}
    roots = [n for n in succ if n not in preds] + list(succ)  # then anything unreached
    result = ParentChild()
    assigned: set[str] = set()
    seen: set[str] = set()
    for root in roots:
        stack = [root]
        while stack:
            a = stack.pop()
            if a in seen:
                continue
            seen.add(a)
            if a not in assigned:
                assigned.add(a)
                kids = [b for b in succ[a] if b not in assigned and same[b] == same[a]]
                assigned.update(kids)
                result.children[a] = kids
            stack.extend(reversed([b for b in succ[a] if b not in seen]))
    return result
