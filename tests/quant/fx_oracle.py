"""The fx-based quantizer placement edgeslim used before the torch.export one (test oracle).

Kept verbatim from ``edgeslim/quant/graph.py`` at the commit before the switch so
that tests can check the new placement against it on nets fx can trace.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from edgeslim.quant.config import QuantSpec
from edgeslim.quant.fake_quant import FakeQuantize, _QuantWeight

_BINARY_FN = {operator.add, operator.iadd, torch.add, operator.mul, torch.mul}
_BINARY_METHOD = {"add", "add_", "mul", "mul_"}
_CAT_FN = {torch.cat, torch.concat}
_POOL_MOD = (nn.AvgPool2d, nn.AdaptiveAvgPool2d)
_POOL_FN = {F.avg_pool2d, F.adaptive_avg_pool2d}
_SHARED_MOD = (nn.MaxPool2d,)
_SHARED_FN = {F.max_pool2d}
_ACT_MOD = (nn.ReLU, nn.ReLU6)
_ACT_FN = {F.relu, torch.relu, F.relu6}
_PASS_MOD = (nn.Flatten, nn.Dropout, nn.Identity)
_PASS_FN = {torch.flatten}
_PASS_METHOD = {"flatten", "view", "reshape", "contiguous"}


class _Kinds:
    def __init__(self, gm: fx.GraphModule) -> None:
        self.mods = dict(gm.named_modules())

    def _mod(self, n: fx.Node) -> nn.Module | None:
        return self.mods.get(n.target) if n.op == "call_module" else None

    def weighted(self, n: fx.Node) -> bool:
        m = self._mod(n)
        return isinstance(m, _QuantWeight) and m.weight_fq is not None

    def binary(self, n: fx.Node) -> bool:
        if n.op == "call_function" and n.target in _BINARY_FN:
            return all(isinstance(a, fx.Node) for a in n.args[:2])
        return n.op == "call_method" and n.target in _BINARY_METHOD

    def cat(self, n: fx.Node) -> bool:
        return n.op == "call_function" and n.target in _CAT_FN

    def pool(self, n: fx.Node) -> bool:
        return isinstance(self._mod(n), _POOL_MOD) or (
            n.op == "call_function" and n.target in _POOL_FN
        )

    def shared(self, n: fx.Node) -> bool:
        return isinstance(self._mod(n), _SHARED_MOD) or (
            n.op == "call_function" and n.target in _SHARED_FN
        )

    def act(self, n: fx.Node) -> bool:
        m = self._mod(n)
        if isinstance(m, _ACT_MOD):
            return True
        if isinstance(m, nn.Hardtanh):
            return m.min_val == 0.0
        return (n.op == "call_function" and n.target in _ACT_FN) or (
            n.op == "call_method" and n.target in {"relu", "relu_"}
        )

    def passthrough(self, n: fx.Node) -> bool:
        return (
            isinstance(self._mod(n), _PASS_MOD)
            or (n.op == "call_function" and n.target in _PASS_FN)
            or (n.op == "call_method" and n.target in _PASS_METHOD)
        )


def _tensor_inputs(n: fx.Node, k: _Kinds) -> list[fx.Node]:
    if k.cat(n):
        seq = n.args[0]
        return [a for a in seq if isinstance(a, fx.Node)]
    if k.binary(n):
        return [a for a in n.args[:2] if isinstance(a, fx.Node)]
    return [n.args[0]] if n.args and isinstance(n.args[0], fx.Node) else []


def _anchor(n: fx.Node, k: _Kinds) -> fx.Node:
    """Move an output quantization point past a ReLU that is its only consumer."""
    while len(n.users) == 1:
        user = next(iter(n.users))
        if not k.act(user):
            break
        n = user
    return n


def insert_activation_quantizers(gm: fx.GraphModule, spec: QuantSpec) -> dict[str, str]:
    """Insert :class:`FakeQuantize` modules ``act_fq.<i>`` at every quantization point.

    Returns ``{layer name: name of the quantizer on its input}`` for weighted layers
    (used by sensitivity analysis). ``gm`` is modified in place and recompiled.
    """
    k = _Kinds(gm)
    points: list[fx.Node] = []  # tensors to quantize, in graph order
    shared: dict[fx.Node, fx.Node] = {}  # max-pool output -> its input point

    def add(n: fx.Node) -> None:
        if n not in points:
            points.append(n)

    outputs = {a for o in gm.graph.nodes if o.op == "output" for a in _flat(o.args)}
    for n in gm.graph.nodes:
        if k.weighted(n) or k.binary(n) or k.cat(n) or k.pool(n):
            for a in _tensor_inputs(n, k):
                add(_source(a, k))
            out = _anchor(n, k)
            if out not in outputs:
                add(out)
        elif k.shared(n):
            src = _tensor_inputs(n, k)
            if src:
                add(_source(src[0], k))
                shared[_anchor(n, k)] = _source(src[0], k)

    quantizer_of: dict[fx.Node, str] = {}
    for i, p in enumerate([p for p in points if p not in shared]):
        name = f"act_fq.{i}"
        if not hasattr(gm, "act_fq"):
            gm.add_module("act_fq", nn.Module())
        gm.act_fq.add_module(str(i), FakeQuantize(spec))
        quantizer_of[p] = name
    for out, src in shared.items():
        if src in quantizer_of:
            quantizer_of[out] = quantizer_of[src]
    # pass-through ops reuse their source's quantizer
    for n in list(gm.graph.nodes):
        if k.passthrough(n) and n.args and isinstance(n.args[0], fx.Node):
            src = _source(n, k)
            if src in quantizer_of and n not in quantizer_of and _feeds_quantized(n, k):
                quantizer_of[n] = quantizer_of[src]

    input_of: dict[str, str] = {}
    for n in list(gm.graph.nodes):
        if k.weighted(n) and isinstance(n.args[0], fx.Node):
            q = quantizer_of.get(_nearest(n.args[0], quantizer_of, k))
            if q:
                input_of[n.target] = q
    for p, name in quantizer_of.items():
        with gm.graph.inserting_after(p):
            q = gm.graph.call_module(name, (p,))
        p.replace_all_uses_with(q, delete_user_cb=lambda u, q=q: u is not q)
    gm.graph.lint()
    gm.recompile()
    return input_of


def _flat(args) -> list:
    out = []
    for a in args:
        if isinstance(a, list | tuple):
            out += _flat(a)
        elif isinstance(a, dict):
            out += _flat(list(a.values()))
        else:
            out.append(a)
    return out


def _source(n: fx.Node, k: _Kinds) -> fx.Node:
    """The producer of ``n`` seen through pass-through ops."""
    while k.passthrough(n) and n.args and isinstance(n.args[0], fx.Node):
        n = n.args[0]
    return n


def _nearest(n: fx.Node, quantizer_of: dict, k: _Kinds) -> fx.Node:
    return n if n in quantizer_of else _source(n, k)


def _feeds_quantized(n: fx.Node, k: _Kinds) -> bool:
    return any(
        k.weighted(u) or k.binary(u) or k.cat(u) or k.pool(u) or k.shared(u) for u in n.users
    )


class _Tracer(fx.Tracer):
    """Keeps quantized layers and quantizers as leaves (they are not in ``torch.nn``)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, _QuantWeight | FakeQuantize) or super().is_leaf_module(m, qualname)


def traceable(model: nn.Module) -> fx.GraphModule | None:
    """The ``torch.fx`` capture of ``model``, or None when it is not traceable."""
    try:
        graph = _Tracer().trace(model)
    except Exception:  # fx raises many types on data-dependent Python control flow
        return None
    gm = fx.GraphModule(model, graph, type(model).__name__)
    mods = dict(gm.named_modules())
    for n in list(gm.graph.nodes):  # folded BNs are nn.Identity: drop them from the graph
        if n.op == "call_module" and isinstance(mods.get(n.target), nn.Identity):
            n.replace_all_uses_with(n.args[0])
            gm.graph.erase_node(n)
    gm.recompile()
    return gm
