"""Dependency groups: channels that must be removed together, found by one graph walk.

After the walk (:mod:`edgeslim.graph.trace`), each union-find component is one
prunable *unit*: the channel positions it covers in every layer space it touches
(a conv's output rows, the BN after it, the next convs' input columns, the
Linear columns a flatten maps it to). Units touching the same set of spaces form
a :class:`Group` (a residual stage, a concat input, the inside of one block).
Components with a pinned element are kept and counted as ``fixed``.

Example:
    >>> from edgeslim.models import build_zoo_model
    >>> g = build_dependency_graph(build_zoo_model("resnet20"), torch.randn(1, 3, 32, 32))
    >>> len(g.groups) > 0
    True
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

import edgeslim.graph.layer_ops  # noqa: F401  (these register op handlers)
import edgeslim.graph.ops_mixing  # noqa: F401
import edgeslim.graph.ops_shape  # noqa: F401
from edgeslim.graph.layers import LayerSpec
from edgeslim.graph.modules import handler_of
from edgeslim.graph.ops import ACTIVATIONS, OPS
from edgeslim.graph.trace import Tracer, capture, op_key

SpaceKey = tuple[str, str]  # (layer path, "out" | "in")


@dataclass
class Group:
    """Units that touch the same layer spaces; each unit is removed whole."""

    spaces: tuple[SpaceKey, ...]
    units: list[dict[SpaceKey, np.ndarray]]  # prunable units: positions in each space
    fixed: int = 0  # pinned units with the same spaces (always kept)

    @property
    def size(self) -> int:
        return len(self.units) + self.fixed

    @property
    def layers(self) -> list[str]:
        return sorted({layer for layer, _ in self.spaces})

    @property
    def name(self) -> str:
        outs = [layer for layer, kind in self.spaces if kind == "out"]
        return (outs or self.layers)[0]


@dataclass
class DependencyGraph:
    """Groups of a model, plus what pruning and data-driven criteria need."""

    groups: list[Group]
    specs: dict[str, LayerSpec]
    space_sizes: dict[SpaceKey, int]
    unsupported: list[str]
    activations: dict[str, tuple[int, np.ndarray, np.ndarray]]  # node -> (axis, group, unit)
    post_resize: dict[str, Callable[[nn.Module], None]] = field(default_factory=dict)
    program: torch.export.ExportedProgram | None = None

    def summary(self) -> str:
        lines = [f"{len(self.groups)} groups"]
        for i, g in enumerate(self.groups):
            lines.append(
                f"  [{i}] {g.name}: {len(g.units)} prunable + {g.fixed} fixed, "
                f"layers {', '.join(g.layers)}"
            )
        lines += [f"  untouched: {u}" for u in self.unsupported]
        return "\n".join(lines)


def build_dependency_graph(
    model: nn.Module, example: torch.Tensor, *, strict: bool = False
) -> DependencyGraph:
    """Capture ``model`` on ``example`` and find its channel dependency groups.

    Args:
        model: the model (not modified; traced in eval mode).
        example: one input batch.
        strict: raise :class:`~edgeslim.core.errors.UnsupportedLayerError` naming the
            layer on an op without a handler, instead of leaving its channels untouched.
    """
    ep = capture(model, example)
    t = Tracer(model, ep, strict)
    walk(t)
    return _group(t, ep)


def walk(t: Tracer) -> None:
    nodes = list(t.ep.graph.nodes)
    i = 0
    while i < len(nodes):
        node = nodes[i]
        if node.op == "placeholder":
            if node.name not in t.params and node.name not in t.constants:
                shape = t.shape(node)
                if shape is not None:
                    rank = len(shape)
                    t.ids[node.name] = (
                        t.placed(t.el.fresh(shape[1], pinned=True), 1, rank)
                        if rank >= 2
                        else t.pinned(rank)
                    )
        elif node.op == "output":
            for a in _flat(node.args):
                ids = t.get(a)
                if ids is not None:
                    t.el.pin(ids)
        elif node.op == "call_function":
            unit = _module_unit(t, node)
            if unit is not None:
                path, module, handler = unit
                j = i
                while j < len(nodes) and _in_module(nodes[j], path):
                    j += 1
                handler(t, path, module, nodes[i:j])
                i = j
                continue
            key = op_key(node)
            result = OPS.get(key)(t, node) if key in OPS else t.unsupported_op(node)
            t.ids[node.name] = result
            if key in ACTIVATIONS and isinstance(result, np.ndarray):
                t.activations[node.name] = result
        i += 1


def _flat(a: object) -> list:
    if isinstance(a, (list, tuple)):
        return [y for x in a for y in _flat(x)]
    if isinstance(a, dict):
        return [y for x in a.values() for y in _flat(x)]
    return [a]


def _stack_paths(node: torch.fx.Node) -> list[str]:
    return [v[0] for v in (node.meta.get("nn_module_stack") or {}).values()]


def _in_module(node: torch.fx.Node, path: str) -> bool:
    return node.op == "call_function" and path in _stack_paths(node)


def _module_unit(t: Tracer, node: torch.fx.Node):
    for path in _stack_paths(node):
        mod = t.modules.get(path)
        if path and mod is not None:
            handler = handler_of(mod)
            if handler is not None:
                return path, mod, handler
    return None


def _group(t: Tracer, ep: torch.export.ExportedProgram) -> DependencyGraph:
    # component root -> {space: positions}
    comps: dict[int, dict[SpaceKey, list[int]]] = defaultdict(lambda: defaultdict(list))
    for key, ids in t.spaces.items():
        for pos, root in enumerate(t.el.roots(ids)):
            comps[int(root)][key].append(pos)
    by_sig: dict[tuple[SpaceKey, ...], Group] = {}
    where: dict[int, tuple[int, int]] = {}
    order: list[tuple[SpaceKey, ...]] = []
    for root, spaces in sorted(
        comps.items(), key=lambda kv: min((list(t.spaces).index(k), p[0]) for k, p in kv[1].items())
    ):
        sig = tuple(sorted(spaces, key=list(t.spaces).index))  # walk order: producer first
        if sig not in by_sig:
            by_sig[sig] = Group(sig, [])
            order.append(sig)
        g = by_sig[sig]
        if t.el.is_pinned(root):
            g.fixed += 1
        else:
            g.units.append({k: np.asarray(v) for k, v in spaces.items()})
            where[root] = (order.index(sig), len(g.units) - 1)
    groups = [by_sig[s] for s in order]
    keep = [i for i, g in enumerate(groups) if g.units]
    remap = {old: new for new, old in enumerate(keep)}
    acts = {}
    for name, ids in t.activations.items():
        axes = [ax for ax, n in enumerate(ids.shape) if n > 1]
        if len(axes) != 1:
            continue
        roots = t.el.roots(ids.reshape(-1))
        hits = [where.get(int(r), (-1, -1)) for r in roots]
        gidx = np.array([remap.get(h[0], -1) for h in hits])
        uidx = np.array([h[1] if remap.get(h[0], -1) >= 0 else -1 for h in hits])
        acts[name] = (axes[0], gidx, uidx)
    return DependencyGraph(
        groups=[groups[i] for i in keep],
        specs=dict(t.layer_specs),
        space_sizes={k: len(v) for k, v in t.spaces.items()},
        unsupported=list(t.unsupported),
        activations=acts,
        post_resize=dict(t.post_resize),
        program=ep,
    )
