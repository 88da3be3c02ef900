"""Handlers for ops that compute with a layer's parameters: where channels become weights.

- conv (groups=1): input channels are the layer's ``in`` space, outputs its ``out`` space;
- depthwise conv: input channel ``i`` *is* output channels ``i*m .. i*m+m-1`` (one space);
- other grouped convs: a whole group (its inputs and outputs) is one unit, so pruning
  removes groups and keeps the group width (transposed grouped convs are left untouched);
- linear: the last axis; a flatten before it repeats each channel over its columns;
- batch/instance norm: per channel, so they share the input's elements;
- group norm: statistics per group, so a whole group is one unit;
- layer norm over a channel axis: statistics over all channels, so pinned;
- embedding: its output width is a space of its own.

The op's parameters are traced back to their module; a parameter whose module
has no :class:`~edgeslim.graph.layers.LayerSpec` (a functional call on a raw
tensor) leaves the channels it touches untouched.
"""

from __future__ import annotations

import numpy as np
import torch

from edgeslim.graph.ops import register_op
from edgeslim.graph.trace import Tracer


def _pin_all(t: Tracer, node: torch.fx.Node, why: str) -> np.ndarray:
    return t.unsupported_op(node, why)


@register_op("aten.conv1d", "aten.conv2d", "aten.conv3d", "aten.convolution", "aten._convolution")
def conv(t: Tracer, node: torch.fx.Node) -> np.ndarray:
    key = node.target.overloadpacket.__name__
    if key in ("convolution", "_convolution") and node.args[6]:
        return conv_transpose(t, node)
    return _conv(t, node, transposed=False)


@register_op("aten.conv_transpose1d", "aten.conv_transpose2d", "aten.conv_transpose3d")
def conv_transpose(t: Tracer, node: torch.fx.Node) -> np.ndarray:
    return _conv(t, node, transposed=True)


def _conv(t: Tracer, node: torch.fx.Node, transposed: bool) -> np.ndarray:
    found = t.layer_of(node.args[1])
    if found is None:
        return _pin_all(t, node, "convolution weight is not a known layer's parameter")
    path, mod, _ = found
    x = t.get(node.args[0])
    c_in, rank = t.shape(node.args[0])[1], len(t.shape(node))
    c_out = mod.out_channels
    out = t.space(path, "out", c_out)
    groups = mod.groups
    x_in = t.along(x, 1, c_in)
    if groups == 1:
        t.el.union(x_in, t.space(path, "in", c_in))
    elif groups == c_in and not transposed:  # depthwise (channel multiplier c_out // c_in)
        t.el.union(np.repeat(x_in, c_out // c_in), out)
    elif not transposed:  # grouped: a unit is one whole group (its inputs and outputs)
        per_in, per_out = x_in.reshape(groups, -1), out.reshape(groups, -1)
        t.el.union(per_in[:, :1], per_in)
        t.el.union(per_out[:, :1], per_out)
        t.el.union(per_in[:, :1], per_out[:, :1])
    else:  # grouped transposed: leave it untouched
        t.el.pin(x_in)
        t.el.pin(out)
    return t.placed(out, 1, rank)


@register_op("aten.linear")
def linear(t: Tracer, node: torch.fx.Node) -> np.ndarray:
    found = t.layer_of(node.args[1])
    if found is None:
        return _pin_all(t, node, "linear weight is not a known layer's parameter")
    path, mod, _ = found
    x = t.get(node.args[0])
    rank = len(t.shape(node))
    t.el.union(t.along(x, -1, mod.in_features), t.space(path, "in", mod.in_features))
    return t.placed(t.space(path, "out", mod.out_features), -1, rank)


def _per_channel(t: Tracer, node: torch.fx.Node, param_args: tuple[int, ...]) -> np.ndarray:
    x = t.get(node.args[0])
    c = t.shape(node.args[0])[1]
    found = next(
        (f for i in param_args if i < len(node.args) and (f := t.layer_of(node.args[i]))), None
    )
    if found is None:
        if any(t.is_constant(node.args[i]) for i in param_args if i < len(node.args)):
            t.el.pin(t.along(x, 1, c))  # per-channel tensors we cannot slice
        return x
    path, mod, _ = found
    t.el.union(t.along(x, 1, c), t.space(path, "out", c))
    return x


@register_op("aten.batch_norm", "aten.instance_norm")
def batch_norm(t: Tracer, node: torch.fx.Node) -> np.ndarray:
    return _per_channel(t, node, (1, 2, 3, 4))


@register_op(
    "aten._native_batch_norm_legit_no_training",
    "aten._native_batch_norm_legit",
    "aten.native_batch_norm",
    "aten._native_batch_norm_legit_functional",
)
def native_batch_norm(t: Tracer, node: torch.fx.Node) -> list:
    x = _per_channel(t, node, (1, 2, 3, 4))
    return [x] + [None] * (len(node.meta["val"]) - 1)


@register_op("aten.group_norm")
def group_norm(t: Tracer, node: torch.fx.Node) -> np.ndarray:
    x = t.get(node.args[0])
    c, groups = t.shape(node.args[0])[1], node.args[1]
    ids = t.along(x, 1, c)
    found = t.layer_of(node.args[2]) if len(node.args) > 2 else None
    if groups == 1 or (found is None and t.is_constant(node.args[2])):
        t.el.pin(ids)  # one group: statistics span every channel
        return x
    per = ids.reshape(groups, c // groups)
    t.el.union(per[:, :1], per)  # a group's channels are normalised together
    if found is not None:
        t.el.union(ids, t.space(found[0], "out", c))
    return x


@register_op("aten.layer_norm", "aten.native_layer_norm", "aten.rms_norm")
def layer_norm(t: Tracer, node: torch.fx.Node) -> object:
    x = t.get(node.args[0])
    k = len(node.args[1])
    if x is not None and any(n > 1 for n in x.shape[x.ndim - k :]):
        t.el.pin(x)  # statistics over the channels: removing one changes the rest
    if isinstance(node.meta.get("val"), (tuple, list)):
        return [x, None, None]
    return x


@register_op("aten.embedding")
def embedding(t: Tracer, node: torch.fx.Node) -> np.ndarray:
    found = t.layer_of(node.args[0])
    rank = len(t.shape(node))
    if found is None:
        return _pin_all(t, node, "embedding table is not a known layer's parameter")
    path, mod, _ = found
    return t.placed(t.space(path, "out", mod.embedding_dim), -1, rank)
