"""Where activations are quantized: the quantization points of an integer runtime.

ONNX Runtime runs a layer in INT8 only when every input arrives through
``DequantizeLinear`` and its output leaves through ``QuantizeLinear``; a float
tensor between two integer kernels breaks the chain and costs a conversion.
Following ``onnxruntime.quantization``'s QDQ rules (its ``registry.py``: the ops
``quantize_static`` quantizes by default, and how each one is quantized), a
tensor is quantized when it is an input or the output of a quantized op:

* weighted layers (conv, linear): input and output;
* residual ``add`` / ``mul`` of two activations, ``cat``, average pooling:
  inputs and output;
* max pooling: input, and its output with the *same* qparams (ORT then runs it
  directly on the integers);
* ``matmul`` / ``bmm`` with an activation input (attention's ``Q K^T`` and
  ``A V``; ORT's ``QDQMatMul``): activation inputs and output;
* ``layer_norm`` (``QDQNormalization``): input and output. ``gelu`` (and ``tanh``)
  are not in ORT's registry: their boundaries are quantized only where a
  neighbouring quantized op asks;
* ``softmax`` is the one point of ``quantize_static``'s defaults left out: its input
  stays float, its output is quantized only because ``A V`` reads it. ORT's
  ``QLinearSoftmax`` (a lookup table per row) took 27% of a 6-layer hidden-128
  BERT's INT8 time on an AVX-512 VNNI EPYC, 7x its float ``Softmax``; with the float
  softmax the INT8 model ran 1.9x FP32 ORT instead of 1.2x at batch 8, length 128
  (``benchmarks/bert_ort.py``), and is closer to FP32, not further;
* an output feeding only a ReLU/ReLU6 is quantized *after* the activation; with
  a zero-point at the bottom of the grid ORT deletes the activation and fuses it
  into the integer kernel, and the simulation computes the same thing.

Pass-through ops (flatten, reshape, view, transpose, dropout, folded BN) reuse
their source's quantizer; tensors that do not depend on the model's input (an
attention mask built from constants) are never quantized, and neither are the
model's outputs.

The points are found on the ``torch.export`` capture that pruning uses
(:class:`edgeslim.graph.calls.ModelGraph`) and expressed as data
(:class:`~edgeslim.quant.sites.Site`: "the output of module X", "input 0 of the
second ``matmul`` in module Y's code"), replayed with hooks by
:class:`~edgeslim.quant.sites.ActivationQuantizers`. The model keeps its class.
No ``torch.fx`` symbolic tracing is used here (``fx.Node`` only as the node type
of the ``torch.export`` graph).

The placement is a function of the architecture (and of the example's shape only
where the model's control flow depends on it), so a saved fake-quant model is
"float architecture + config": on reload, either replay the same preparation on an
example of the same shape, or store :meth:`Placement.to_dict` and call
:func:`attach_quantizers_` on the rebuilt model, then load its ``state_dict``
(``act_fq.<i>.scale``, ``act_fq.<i>.zero_point``, ...).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field, replace

import torch
from torch import fx, nn

from edgeslim.core.modes import eval_mode
from edgeslim.graph.calls import ModelGraph
from edgeslim.quant.config import QuantSpec
from edgeslim.quant.fake_quant import _QuantWeight
from edgeslim.quant.sites import ActivationQuantizers, Site, record_calls

_WEIGHTED = {"conv1d", "conv2d", "conv3d", "linear"}
_BINARY = {"add", "add_", "mul", "mul_"}
_CAT = {"cat", "concat", "concatenate"}
_POOL = {"avg_pool2d", "adaptive_avg_pool2d"}
_SHARED = {"max_pool2d"}
_MATMUL = {"matmul", "bmm"}
_UNARY = {"layer_norm"}  # ORT quantizes input 0 and the output (softmax: see the docstring)
_ACT = {"relu", "relu_", "relu6", "relu6_"}
_HARDTANH = {"hardtanh", "hardtanh_"}
_PASS = {
    "flatten", "view", "reshape", "_unsafe_view", "contiguous", "transpose", "permute",
    "dropout", "clone", "t", "squeeze", "unsqueeze", "select", "slice", "alias", "detach",
}  # fmt: skip


@dataclass
class Placement:
    """Where the activation quantizers of a model run, as data (JSON-able).

    Args:
        sites: every :class:`Site` (several may share one quantizer).
        input_of: ``{weighted layer: name of the quantizer on its input}``.
        notes: points that could not be placed, or other warnings; empty when
            every ORT quantization point has a quantizer.
    """

    sites: list[Site]
    input_of: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def quantizers(self) -> int:
        return 1 + max((s.quantizer for s in self.sites), default=-1)

    def to_dict(self) -> dict:
        return {
            "sites": [s.to_dict() for s in self.sites],
            "input_of": dict(self.input_of),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Placement:
        return cls([Site.from_dict(s) for s in d["sites"]], dict(d["input_of"]), list(d["notes"]))


class _Rules:
    """Which nodes of a capture are quantized ops, and their tensor inputs."""

    def __init__(self, g: ModelGraph, weighted: set[str]) -> None:
        self.g, self.weighted = g, weighted

    def kind(self, n: fx.Node) -> str | None:
        name, g = self.g.name(n), self.g
        if name in _WEIGHTED:  # the layer's own op (its weight may be fake-quantized first)
            return "weighted" if g.scope(n).path in self.weighted else None
        if name in _BINARY:
            return "io" if all(g.is_dynamic(a) for a in n.args[:2]) else None
        if name in _CAT:
            return "io"
        if name in _POOL or name in _UNARY:
            return "io"
        if name in _MATMUL:
            return "io" if any(g.is_dynamic(a) for a in n.args[:2]) else None
        if name in _SHARED:
            return "shared"
        return None

    def inputs(self, n: fx.Node) -> list[fx.Node]:
        name = self.g.name(n)
        if name in _CAT:
            cand = list(n.args[0])
        elif name in _BINARY or name in _MATMUL:
            cand = list(n.args[:2])
        else:
            cand = [n.args[0]] if n.args else []
        return [a for a in cand if self.g.is_dynamic(a)]

    def act(self, n: fx.Node) -> bool:
        name = self.g.name(n)
        if name in _ACT:
            return True
        return name in _HARDTANH and len(n.args) > 1 and float(n.args[1]) == 0.0

    def passthrough(self, n: fx.Node) -> bool:
        return n.op == "call_function" and self.g.name(n) in _PASS

    def source(self, n: fx.Node) -> fx.Node:
        while self.passthrough(n) and n.args and isinstance(n.args[0], fx.Node):
            n = n.args[0]
        return n

    def anchor(self, n: fx.Node) -> fx.Node:
        """Move an output point past a ReLU that is its only consumer."""
        while len(n.users) == 1:
            user = next(iter(n.users))
            if not self.act(user):
                break
            n = user
        return n


def quantization_points(
    g: ModelGraph, weighted: set[str]
) -> tuple[list[fx.Node], dict[fx.Node, fx.Node], dict[str, fx.Node]]:
    """ORT's quantization points on capture ``g``.

    Returns the tensors to quantize in graph order, ``{tensor: the point whose
    quantizer it reuses}`` (a max-pool output shares its input's qparams; a
    pass-through output read by a quantized op, as ``flatten`` before a classifier,
    is quantized again with its source's quantizer, a no-op on values already on the
    grid that puts ``DequantizeLinear`` right before the integer kernel) and
    ``{weighted layer: the point on its input}``.
    """
    r = _Rules(g, weighted)
    points: list[fx.Node] = []
    shared: dict[fx.Node, fx.Node] = {}
    input_of: dict[str, fx.Node] = {}

    def add(n: fx.Node) -> None:
        if g.is_dynamic(n) and n not in points:
            points.append(n)

    for n in g.ops():
        kind = r.kind(n)
        if kind is None:
            continue
        ins = r.inputs(n)
        srcs = [r.source(a) for a in ins]
        for a in srcs:
            add(a)
        for a, src in zip(ins, srcs, strict=True):
            if a is not src:
                shared.setdefault(a, src)
        if kind == "weighted" and srcs:
            path = g.scope(n).path
            first = input_of.setdefault(path, srcs[0])
            if srcs[0] is not first:
                # a layer called on several tensors (a head shared by pyramid levels):
                # one input quantizer for every call, since its int32 bias has one scale
                shared.setdefault(srcs[0], first)
        out = r.anchor(n)
        if kind == "shared":
            if srcs:
                shared[out] = srcs[0]
        elif out not in g.outputs:
            add(out)
    return [p for p in points if p not in shared], shared, input_of


class _Resolver:
    """Turns a tensor of the capture into sites the runtime can find again."""

    def __init__(self, g: ModelGraph, rules: _Rules, counts, outputs_seen) -> None:
        self.g, self.r, self.counts, self.outputs_seen = g, rules, counts, outputs_seen

    def _fn_ok(self, n: fx.Node) -> bool:
        s, name = self.g.scope(n), self.g.name(n)
        return self.counts.get((s.path, s.call, name), 0) == self.g.counts[(s, name)] > 0

    def _fn(self, n: fx.Node, slot: str, q: int) -> Site:
        s = self.g.scope(n)
        return Site(s.path, s.call, self.g.name(n), self.g.ordinal(n), slot, q)

    def sites(self, t: fx.Node, q: int) -> list[Site]:
        g = self.g
        if t.op == "placeholder":
            return [Site("", 0, None, 0, f"in{g.user_inputs.index(t)}", q)]
        for s in reversed(g.scopes(t)):  # innermost module call returning exactly t
            if s.path and self.outputs_seen.get((s.path, s.call)) and g.escaping(s) == [t]:
                if g.leaves(t, s):
                    return [Site(s.path, s.call, None, 0, "out", q)]
        if self._fn_ok(t):
            return [self._fn(t, "out", q)]
        return self._consumers(t, q)

    def _consumers(self, t: fx.Node, q: int) -> list[Site]:
        out: list[Site] = []
        for u in t.users:
            if u.op != "call_function":
                continue
            if self.r.passthrough(u) and u.args[0] is t:
                out += self._consumers(u, q)
                continue
            if not self._fn_ok(u):
                continue
            for i, a in enumerate(u.args):
                if a is t:
                    out.append(self._fn(u, f"in{i}", q))
                elif isinstance(a, list | tuple):
                    out += [self._fn(u, f"in{i}.{j}", q) for j, b in enumerate(a) if b is t]
        return out


def place(model: nn.Module, g: ModelGraph, example: torch.Tensor) -> Placement:
    """The :class:`Placement` of ORT's quantization points for ``model`` (not modified).

    ``model`` is the model that will run (its quantized layers already swapped in);
    ``g`` its capture, or the capture of its float twin with the same module names.
    """
    weighted = {n for n, m in model.named_modules() if isinstance(m, _QuantWeight) and m.weight_fq}
    points, shared, input_pts = quantization_points(g, weighted)
    with eval_mode(model):
        counts, outputs_seen = record_calls(model, example)
    res = _Resolver(g, _Rules(g, weighted), counts, outputs_seen)
    index = {p: i for i, p in enumerate(points)}
    for out, src in shared.items():
        while src in shared and src not in index:  # a chain: reuse its root's quantizer
            src = shared[src]
        if src in index and out not in index:
            index[out] = index[src]
    sites: list[Site] = []
    notes: list[str] = []
    for t, q in index.items():
        found = res.sites(t, q)
        if not found:
            notes.append(
                f"no quantizer on {g.op(t)} in {g.scope(t).path or '<model>'!r}: "
                "no module call or functional op of its code returns or reads it"
            )
        sites += found
    # number the quantizers that got a site 0, 1, ... in graph order
    new = {q: i for i, q in enumerate(sorted({s.quantizer for s in sites}))}
    sites = [replace(s, quantizer=new[s.quantizer]) for s in sites]
    input_of = {
        layer: f"act_fq.{new[index[p]]}"
        for layer, p in input_pts.items()
        if p in index and index[p] in new
    }
    return Placement(sites, input_of, notes)


def attach_quantizers_(model: nn.Module, placement: Placement, spec: QuantSpec) -> nn.Module:
    """Add fresh quantizers at ``placement``'s sites to ``model`` in place (no capture).

    This replays a placement saved with :meth:`Placement.to_dict` on a rebuilt
    model, before its ``state_dict`` (``act_fq.<i>.scale`` ...) is loaded.
    """
    ActivationQuantizers(spec, placement.sites).attach_(model)
    return model


def insert_activation_quantizers(
    model: nn.Module,
    spec: QuantSpec,
    example: torch.Tensor,
    *,
    graph: ModelGraph | None = None,
) -> tuple[nn.Module, Placement]:
    """A copy of ``model`` with a :class:`FakeQuantize` at every ORT quantization point.

    Args:
        model: the model to quantize (quantized layers swapped in, BN folded); not
            modified.
        spec: the activation spec of every quantizer.
        example: an input to capture the model with ``torch.export``.
        graph: a capture already made (e.g. of the float model before BN folding,
            with folded BNs bypassed); ``example`` is then used only to count calls.

    Returns:
        ``(model copy, placement)``: the copy keeps its class and forward; its
        quantizers are ``act_fq.0``, ``act_fq.1``, ... in graph order. Points that
        cannot be placed are listed in ``placement.notes`` and warned about.

    Example:
        >>> from edgeslim.quant.config import activation_spec, weight_spec
        >>> from edgeslim.quant.fake_quant import QuantLinear
        >>> m = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> m[1], m[3] = (QuantLinear.from_float(m[i], weight_spec()) for i in (1, 3))
        >>> qm, where = insert_activation_quantizers(m, activation_spec(), torch.randn(2, 4))
        >>> [s.describe() for s in where.sites]
        ['<model>:in0 -> act_fq.0', '2:out -> act_fq.1']
    """
    g = graph if graph is not None else ModelGraph.of(model, example)
    placement = place(model, g, example)
    for note in placement.notes:
        warnings.warn(note, stacklevel=2)
    out = copy.deepcopy(model)
    attach_quantizers_(out, placement, spec)
    return out, placement


__all__ = ["Placement", "attach_quantizers_", "insert_activation_quantizers", "place"]
