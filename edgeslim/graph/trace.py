"""Capture a model with ``torch.export`` and walk its ATen graph, tying channel elements.

The model is exported in eval mode with ``strict=False``: an ATen-level graph in
which parameters are placeholders, mapped back to module names through the
graph signature, and every node carries its module path (``nn_module_stack``).
:class:`Tracer` runs one op handler (:mod:`edgeslim.graph.ops`) per node, or one
module handler (:mod:`edgeslim.graph.modules`) per call of a module registered
as a unit (attention blocks, custom layers).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError, UnsupportedLayerError
from edgeslim.core.modes import eval_mode, quiet_exporter
from edgeslim.graph.elements import Elements
from edgeslim.graph.layers import LayerSpec, spec_of


def capture(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` in eval mode (its modes are restored after)."""
    with eval_mode(model), quiet_exporter():
        try:
            return torch.export.export(model, (example,), strict=False)
        except Exception as e:  # export raises many types; the user needs one clear line
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise EdgeslimError(f"cannot capture the model graph with torch.export: {msg}") from e


def op_key(node: torch.fx.Node) -> str:
    """Registry key of a call: ``aten.conv2d``, ``getitem``, ``my_ns.my_op``."""
    t = node.target
    if t is operator.getitem:
        return "getitem"
    packet = getattr(t, "overloadpacket", None)
    if packet is not None:
        return f"{t.namespace}.{packet.__name__}"
    return getattr(t, "__name__", str(t))


@dataclass
class Tracer:
    """State of one graph walk: element ids per node, layer spaces, pins and findings."""

    model: nn.Module
    ep: torch.export.ExportedProgram
    strict: bool = False
    el: Elements = field(default_factory=Elements)
    ids: dict[str, object] = field(default_factory=dict)  # node name -> ids array / list
    spaces: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    layer_specs: dict[str, LayerSpec] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)
    activations: dict[str, np.ndarray] = field(default_factory=dict)  # node -> ids
    post_resize: dict[str, object] = field(default_factory=dict)  # module path -> fixer

    def __post_init__(self) -> None:
        sig = self.ep.graph_signature
        self.params = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
        self.constants = set(sig.inputs_to_lifted_tensor_constants)
        self.modules = dict(self.model.named_modules())

    # ----- node facts -------------------------------------------------------------
    @staticmethod
    def shape(node: object) -> tuple[int, ...] | None:
        val = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
        if isinstance(val, torch.Tensor):
            return tuple(int(d) for d in val.shape)
        return None

    @staticmethod
    def where(node: torch.fx.Node) -> str:
        """The module path a node runs in (for messages)."""
        stack = node.meta.get("nn_module_stack") or {}
        path = list(stack.values())[-1][0] if stack else ""
        return path or "<top level>"

    def get(self, arg: object) -> np.ndarray | None:
        """Element ids of a tensor argument (None for params, constants and non-tensors)."""
        if isinstance(arg, torch.fx.Node):
            v = self.ids.get(arg.name)
            return v if isinstance(v, np.ndarray) else None
        return None

    def is_constant(self, arg: object) -> bool:
        """A tensor the model computes with but edgeslim cannot slice with its layer."""
        return (
            isinstance(arg, torch.fx.Node)
            and arg.op == "placeholder"
            and (arg.name in self.params or arg.name in self.constants)
        )

    def layer_of(self, arg: object) -> tuple[str, nn.Module, LayerSpec] | None:
        """The module that owns parameter placeholder ``arg``, if a layer spec knows it."""
        if not isinstance(arg, torch.fx.Node) or arg.name not in self.params:
            return None
        path = self.params[arg.name].rpartition(".")[0]
        mod = self.modules.get(path)
        spec = spec_of(mod) if mod is not None else None
        if spec is None:
            return None
        self.layer_specs[path] = spec
        return path, mod, spec

    # ----- element helpers --------------------------------------------------------
    def pinned(self, rank: int) -> np.ndarray:
        """One pinned element broadcast over a tensor of ``rank`` dims."""
        return self.el.fresh(1, pinned=True).reshape((1,) * rank)

    def space(self, layer: str, kind: str, n: int) -> np.ndarray:
        """Elements of ``layer``'s ``kind`` ("out"/"in") channels, created on first use."""
        key = (layer, kind)
        if key not in self.spaces:
            self.spaces[key] = self.el.fresh(n)
        return self.spaces[key]

    def along(self, ids: np.ndarray | None, axis: int, size: int) -> np.ndarray:
        """1-D elements of the ``size`` channels a layer sees along ``axis``.

        Elements that vary along other axes meet in the same channel, so they are
        united; a tensor whose channels do not vary along ``axis`` is pinned.
        """
        if ids is None:
            return self.el.fresh(size, pinned=True)
        axis %= ids.ndim
        if ids.shape[axis] != size:
            self.el.pin(ids)
            return self.el.fresh(size, pinned=True)
        moved = np.moveaxis(ids, axis, 0).reshape(size, -1)
        if moved.shape[1] > 1:
            self.el.union(moved[:, :1], moved[:, 1:])
        return moved[:, 0].copy()

    @staticmethod
    def placed(ids: np.ndarray, axis: int, rank: int) -> np.ndarray:
        """1-D ``ids`` laid along ``axis`` of a rank-``rank`` tensor."""
        shape = [1] * rank
        shape[axis % rank] = ids.size
        return ids.reshape(shape)

    def unsupported_op(self, node: torch.fx.Node, why: str = "no handler") -> object:
        """Pin everything an unknown op touches; raise instead in strict mode."""
        msg = f"op {op_key(node)} in layer {self.where(node)!r}: {why}"
        if self.strict:
            raise UnsupportedLayerError(
                f"cannot follow channels through {msg}; register a handler "
                "(edgeslim.graph.register_op / register_module) or ignore the layer"
            )
        self.unsupported.append(msg)
        for a in tensor_args(node):
            ids = self.get(a)
            if ids is not None:
                self.el.pin(ids)
        val = node.meta.get("val")
        if isinstance(val, (tuple, list)):
            return [self.pinned(len(v.shape)) if isinstance(v, torch.Tensor) else None for v in val]
        shape = self.shape(node)
        return self.pinned(len(shape)) if shape is not None else None


def tensor_args(node: torch.fx.Node) -> list[torch.fx.Node]:
    """Every fx node among ``node``'s arguments (nested lists included)."""
    out: list[torch.fx.Node] = []

    def visit(a: object) -> None:
        if isinstance(a, torch.fx.Node):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            for b in a:
                visit(b)

    visit(list(node.args) + list(node.kwargs.values()))
    return out
