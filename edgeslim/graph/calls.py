"""A module-level view of a ``torch.export`` capture: which module call ran each op.

:func:`edgeslim.graph.trace.capture` gives an ATen graph whose nodes carry their
module stack (``nn_module_stack``, one entry per module call, ``@k`` marking the
k-th call of a module in one forward). :class:`ModelGraph` reads that graph in
terms a module-level rewrite can act on:

* the op key of every node (``aten.conv2d``) and its *ordinal*: the how-many-th
  op of that key the innermost module call runs in its own code;
* the module call (:class:`Scope`) that ran it, and which nodes leave a module
  call (its outputs);
* the layer that owns a parameter, and which tensors depend on the user's inputs
  (the others are constants the runtime folds).

BN folding (:mod:`edgeslim.fuse.conv_bn`) and quantizer placement
(:mod:`edgeslim.quant.graph`) read the same view, so both see the graph that
pruning sees.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
from torch import fx, nn

from edgeslim.graph.trace import capture, op_key


@dataclass(frozen=True, order=True)
class Scope:
    """One call of a module: its qualified name (``""`` for the root) and call index."""

    path: str
    call: int = 0


def _scope_of_key(key: str, path: str) -> Scope:
    _, at, k = key.rpartition("@")
    return Scope(path, int(k) if at and k.isdigit() else 0)


class ModelGraph:
    """The ops of one capture, grouped by the module calls that ran them.

    Example:
        >>> m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> g = ModelGraph.of(m, torch.randn(1, 3, 8, 8))
        >>> [(g.op(n), g.scope(n).path) for n in g.ops()]
        [('aten.conv2d', '0'), ('aten.relu', '1')]
    """

    def __init__(self, model: nn.Module, ep: torch.export.ExportedProgram) -> None:
        self.model = model
        self.ep = ep
        self.graph: fx.Graph = ep.graph
        sig = ep.graph_signature
        self.params = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
        self.user_inputs = [n for n in self.graph.nodes if n.name in set(sig.user_inputs)]
        self.outputs = {a for a in _flat(_output_node(self.graph).args) if isinstance(a, fx.Node)}
        self._scopes: dict[fx.Node, tuple[Scope, ...]] = {}
        self._ordinal: dict[fx.Node, int] = {}
        self.counts: Counter = Counter()  # (Scope, op name) -> ops of that name it runs itself
        self.calls: Counter = Counter()  # module path -> number of calls in one forward
        for n in self.ops():
            stack = n.meta.get("nn_module_stack") or {}
            scopes = tuple(_scope_of_key(k, v[0]) for k, v in stack.items()) or (Scope(""),)
            if scopes[0].path != "":
                scopes = (Scope(""), *scopes)
            self._scopes[n] = scopes
            key = (scopes[-1], self.name(n))
            self._ordinal[n] = self.counts[key]
            self.counts[key] += 1
            for s in scopes:
                self.calls[s.path] = max(self.calls[s.path], s.call + 1)
        self.dynamic = self._dynamic()

    @classmethod
    def of(cls, model: nn.Module, example: torch.Tensor) -> ModelGraph:
        """Capture ``model`` on ``example`` (see :func:`~edgeslim.graph.trace.capture`)."""
        return cls(model, capture(model, example))

    # ----- facts about nodes ------------------------------------------------------
    def ops(self) -> list[fx.Node]:
        """The op nodes in execution order."""
        return [n for n in self.graph.nodes if n.op == "call_function"]

    @staticmethod
    def op(n: fx.Node) -> str:
        """``aten.add`` style key (``getitem`` for tuple indexing)."""
        return op_key(n)

    @staticmethod
    def name(n: fx.Node) -> str:
        """The op's short name (``add``, ``conv2d``): what a Python call of it is named."""
        return op_key(n).rpartition(".")[2]

    def scopes(self, n: fx.Node) -> tuple[Scope, ...]:
        """Module calls around ``n``, outermost (the root) first."""
        return self._scopes.get(n, (Scope(""),))

    def scope(self, n: fx.Node) -> Scope:
        """The innermost module call that ran ``n``."""
        return self.scopes(n)[-1]

    def ordinal(self, n: fx.Node) -> int:
        """How many ops named like ``n`` its module call ran before it, in its own code."""
        return self._ordinal[n]

    def param_module(self, arg: object) -> str | None:
        """Qualified name of the module owning parameter placeholder ``arg``."""
        if isinstance(arg, fx.Node) and arg.name in self.params:
            return self.params[arg.name].rpartition(".")[0]
        return None

    def is_dynamic(self, arg: object) -> bool:
        """True for a tensor computed from the user's inputs (not a weight or a constant)."""
        return isinstance(arg, fx.Node) and arg in self.dynamic

    def in_scope(self, n: fx.Node, s: Scope) -> bool:
        return s in self.scopes(n)

    def leaves(self, n: fx.Node, s: Scope) -> bool:
        """True when every use of ``n`` is outside module call ``s`` (or ``n`` is an output)."""
        users = [u for u in n.users if u.op == "call_function"]
        return all(not self.in_scope(u, s) for u in users) and bool(users or n in self.outputs)

    def escaping(self, s: Scope) -> list[fx.Node]:
        """Nodes of module call ``s`` used outside it: what the call returns."""
        return [
            n
            for n in self.ops()
            if self.in_scope(n, s)
            and (n in self.outputs or any(not self.in_scope(u, s) for u in n.users))
        ]

    def bypass(self, n: fx.Node) -> None:
        """Remove a node whose output equals its first input (a folded BatchNorm)."""
        src = n.args[0]
        n.replace_all_uses_with(src)
        self.outputs = {src if o is n else o for o in self.outputs}
        self.graph.erase_node(n)

    def _dynamic(self) -> set[fx.Node]:
        out: set[fx.Node] = set(self.user_inputs)
        for n in self.graph.nodes:
            if n.op == "call_function" and any(a in out for a in _flat(n.args)):
                out.add(n)
            elif n.op == "call_function" and any(a in out for a in _flat(list(n.kwargs.values()))):
                out.add(n)
        return out


def _output_node(graph: fx.Graph) -> fx.Node:
    return next(n for n in graph.nodes if n.op == "output")


def _flat(args: object) -> list:
    out: list = []
    if isinstance(args, (list, tuple)):
        for a in args:
            out += _flat(a)
    elif isinstance(args, dict):
        out += _flat(list(args.values()))
    else:
        out.append(args)
    return out
