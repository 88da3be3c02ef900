"""Module handlers: modules traced as one unit instead of op by op.

Attention blocks compute with heads (a ``view`` into ``(heads, head_dim)``, two
matmuls and a softmax) that op-level channel rules cannot see; pruning them op by
op would either pin everything or break the head layout. A module handler sees
the whole call (``handler(tracer, path, module, nodes)``) and ties channels
itself. Built in:

- transformers' BERT/RoBERTa attention (``BertAttention``): whole heads, i.e. rows
  ``h*d .. h*d+d-1`` of query, key and value and the same columns of
  ``output.dense`` form one unit (Michel et al., "Are Sixteen Heads Really Better
  than One?", NeurIPS 2019). The hidden width stays (LayerNorm and the residual
  stream pin it).
- ``nn.MultiheadAttention``: whole heads, via
  :class:`edgeslim.graph.attention.HeadPrunableMHA` (its packed ``in_proj``
  cannot shrink below ``embed_dim``).
- :func:`channelwise`: a custom per-channel layer (scale, bias, activation with
  per-channel parameters), given a :class:`~edgeslim.graph.layers.LayerSpec`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from edgeslim.core.registry import Registry
from edgeslim.graph.layers import LAYERS, layer_key, spec_of
from edgeslim.graph.trace import Tracer, tensor_args

ModuleHandler = Callable[[Tracer, str, nn.Module, list[torch.fx.Node]], None]
MODULES: Registry[ModuleHandler] = Registry("module handler")


def register_module(cls: type[nn.Module] | str, handler: ModuleHandler) -> None:
    """Trace every call of ``cls`` (a class or its ``module.QualName``) with ``handler``."""
    MODULES.register(cls if isinstance(cls, str) else layer_key(cls), handler)


def handler_of(module: nn.Module) -> ModuleHandler | None:
    for cls in type(module).__mro__:
        if layer_key(cls) in MODULES:
            return MODULES.get(layer_key(cls))
    return None


def unit_io(t: Tracer, nodes: list[torch.fx.Node]) -> tuple[list[torch.fx.Node], list]:
    """External tensor inputs of a module call, and its nodes used outside it."""
    inside = {n.name for n in nodes}
    inputs: list[torch.fx.Node] = []
    for n in nodes:
        for a in tensor_args(n):
            if a.name not in inside and t.get(a) is not None and a not in inputs:
                inputs.append(a)
    outputs = [n for n in nodes if any(u.name not in inside for u in n.users)]
    return inputs, outputs


def opaque(t: Tracer, path: str, module: nn.Module, nodes: list[torch.fx.Node]) -> None:
    """Leave the module untouched: its inputs' and outputs' channels are pinned."""
    inputs, outputs = unit_io(t, nodes)
    for a in inputs:
        t.el.pin(t.get(a))
    for n in outputs:
        val = n.meta.get("val")
        if isinstance(val, (tuple, list)):
            t.ids[n.name] = [
                t.pinned(len(v.shape)) if isinstance(v, torch.Tensor) else None for v in val
            ]
        elif isinstance(val, torch.Tensor):
            t.ids[n.name] = t.pinned(val.dim())


def channelwise(axis: int = 1) -> ModuleHandler:
    """Handler for a custom per-channel layer whose :class:`LayerSpec` has only ``out``.

    Example:
        >>> # register_layer(MyScale, LayerSpec(out=(("scale", 0),), inp=(), resize=fix))
        >>> # register_module(MyScale, channelwise(axis=1))
    """

    def handler(t: Tracer, path: str, module: nn.Module, nodes: list[torch.fx.Node]) -> None:
        inputs, outputs = unit_io(t, nodes)
        spec = spec_of(module)
        if len(inputs) != 1 or spec is None:
            return opaque(t, path, module, nodes)
        x = t.get(inputs[0])
        n = t.shape(inputs[0])[axis]
        t.layer_specs[path] = spec
        t.el.union(t.along(x, axis, n), t.space(path, "out", n))
        for o in outputs:
            t.ids[o.name] = x if t.shape(o) == t.shape(inputs[0]) else t.pinned(len(t.shape(o)))

    return handler


def head_unit(t: Tracer, path: str, qkv: list[str], out: str, heads: int, width: int) -> None:
    """Tie ``heads`` head units across q/k/v output rows and the output projection's columns."""
    linear = LAYERS.get(layer_key(nn.Linear))
    spaces = [t.space(f"{path}.{p}", "out", width) for p in qkv]
    spaces.append(t.space(f"{path}.{out}", "in", width))
    for p in qkv:
        t.layer_specs[f"{path}.{p}"] = linear
    t.layer_specs[f"{path}.{out}"] = linear
    for s in spaces[1:]:
        t.el.union(spaces[0], s)
    per_head = spaces[0].reshape(heads, width // heads)
    t.el.union(per_head[:, :1], per_head)


def bert_attention(t: Tracer, path: str, module: nn.Module, nodes: list[torch.fx.Node]) -> None:
    """BERT-style attention (``.self.{query,key,value}``, ``.output.dense``): whole heads."""
    opaque(t, path, module, nodes)
    sa = module.self
    head_unit(
        t,
        path,
        ["self.query", "self.key", "self.value"],
        "output.dense",
        sa.num_attention_heads,
        sa.all_head_size,
    )

    def fix(m: nn.Module) -> None:
        width = m.self.query.out_features
        m.self.num_attention_heads = width // m.self.attention_head_size
        m.self.all_head_size = width

    t.post_resize[path] = fix


def mha(t: Tracer, path: str, module: nn.Module, nodes: list[torch.fx.Node]) -> None:
    """:class:`HeadPrunableMHA`: whole heads; ``nn.MultiheadAttention`` (not yet converted
    by :func:`edgeslim.graph.attention.convert_mha`) is left untouched."""
    from edgeslim.graph.attention import HeadPrunableMHA

    opaque(t, path, module, nodes)
    if isinstance(module, HeadPrunableMHA):
        head_unit(
            t,
            path,
            ["q_proj", "k_proj", "v_proj"],
            "out_proj",
            module.num_heads,
            module.q_proj.out_features,
        )
        t.post_resize[path] = HeadPrunableMHA.fix_heads


for _name in ("BertAttention", "RobertaAttention"):
    _mod = _name.replace("Attention", "").lower()
    register_module(f"transformers.models.{_mod}.modeling_{_mod}.{_name}", bert_attention)
register_module(nn.MultiheadAttention, mha)
register_module("edgeslim.graph.attention.HeadPrunableMHA", mha)

__all__ = ["MODULES", "channelwise", "handler_of", "opaque", "register_module", "unit_io"]
