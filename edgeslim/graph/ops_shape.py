"""Handlers for ops that move channels: concat, split/chunk, slice, view/reshape, permute.

Concat offsets channel positions; equal splits shrink alike (index ``j`` of every piece
is one channel, since the model's ``chunk`` re-derives the piece width); a view that
splits a channel axis in two keeps the outer factor fixed (channel shuffle); slices of
a channel axis with literal bounds pin the channels.
"""

from __future__ import annotations

import numpy as np
import torch

from edgeslim.graph.elements import compress, reshape_ids, varying_axes
from edgeslim.graph.ops import _first, register_op
from edgeslim.graph.trace import Tracer


@register_op("aten.cat", "aten.concat", "aten.concatenate")
def cat(t: Tracer, node: torch.fx.Node) -> np.ndarray | None:
    """Concatenation: along a channel axis the channels are offset, elsewhere joined."""
    parts = node.args[0]
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    out_shape = t.shape(node)
    rank = len(out_shape)
    dim %= rank
    arrays = []
    for p in parts:
        ids = t.get(p)
        if ids is None:
            ids = t.pinned(rank)
        arrays.append(np.broadcast_to(ids, _with(ids.shape, dim, t.shape(p)[dim])))
    other = [max(a.shape[ax] for a in arrays) for ax in range(rank)]
    arrays = [np.broadcast_to(a, _with(tuple(other), dim, a.shape[dim])) for a in arrays]
    return compress(np.concatenate(arrays, dim))


@register_op("aten.stack")
def stack(t: Tracer, node: torch.fx.Node) -> np.ndarray | None:
    parts = node.args[0]
    dim = node.args[1] if len(node.args) > 1 else 0
    rank = len(t.shape(node))
    arrays = [t.get(p) if t.get(p) is not None else t.pinned(rank - 1) for p in parts]
    other = np.broadcast_shapes(*(a.shape for a in arrays))
    return compress(np.stack([np.broadcast_to(a, other) for a in arrays], dim % rank))


def _with(shape: tuple[int, ...], axis: int, n: int) -> tuple[int, ...]:
    s = list(shape)
    s[axis] = n
    return tuple(s)


@register_op(
    "aten.split", "aten.split_with_sizes", "aten.chunk", "aten.unbind", "aten.tensor_split"
)
def split(t: Tracer, node: torch.fx.Node) -> list:
    """Split along a channel axis: pieces of equal size shrink alike, position by position.

    The model's code re-derives the split from the pruned width (``chunk(2)``), so
    the pieces must keep equal widths: index ``j`` of every piece is one channel.
    """
    ids = _first(t, node)
    shapes = [tuple(v.shape) for v in node.meta["val"]]
    key = node.target.overloadpacket.__name__
    if key in ("split", "split_with_sizes", "tensor_split"):
        dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
    else:
        dim = (
            node.args[2]
            if key == "chunk" and len(node.args) > 2
            else (node.args[1] if key == "unbind" and len(node.args) > 1 else 0)
        )
    if ids is None:
        return [t.pinned(len(s)) for s in shapes]
    dim %= ids.ndim
    if ids.shape[dim] == 1:
        return [ids if key != "unbind" else np.take(ids, 0, dim) for _ in shapes]
    if key == "unbind":
        t.el.pin(ids)
        return [np.take(ids, 0, dim) for _ in shapes]
    sizes = [s[dim] for s in shapes]
    bounds = np.cumsum([0, *sizes])
    pieces = [np.take(ids, range(bounds[i], bounds[i + 1]), dim) for i in range(len(sizes))]
    if len(set(sizes)) > 1:
        t.el.pin(ids)  # unequal literal sizes: the code cannot follow a narrower input
        return pieces
    for p in pieces[1:]:
        t.el.union(pieces[0], p)
    return pieces


@register_op("getitem")
def getitem(t: Tracer, node: torch.fx.Node) -> object:
    src = t.ids.get(node.args[0].name)
    if isinstance(src, list):
        return src[node.args[1]]
    return None


@register_op("aten.slice")
def slice_(t: Tracer, node: torch.fx.Node) -> np.ndarray | None:
    ids = _first(t, node)
    if ids is None:
        return None
    dim = (node.args[1] if len(node.args) > 1 else 0) % ids.ndim
    if ids.shape[dim] == 1:
        return ids
    shape_in, shape_out = t.shape(node.args[0]), t.shape(node)
    if shape_in[dim] == shape_out[dim]:  # a full slice is a no-op
        return ids
    t.el.pin(ids)  # a literal channel range would select other channels after pruning
    start = node.args[2] if len(node.args) > 2 and node.args[2] is not None else 0
    step = node.args[4] if len(node.args) > 4 else 1
    idx = range(start % shape_in[dim] if start < 0 else start, shape_in[dim], step)[
        : shape_out[dim]
    ]
    return np.take(ids, list(idx), dim)


@register_op("aten.select")
def select(t: Tracer, node: torch.fx.Node) -> np.ndarray | None:
    ids = _first(t, node)
    if ids is None:
        return None
    dim = node.args[1] % ids.ndim
    if ids.shape[dim] > 1:
        t.el.pin(ids)
    return np.take(ids, 0, dim)


@register_op(
    "aten.view",
    "aten.reshape",
    "aten._unsafe_view",
    "aten.flatten",
    "aten.unflatten",
    "aten.view_as",
    "aten.reshape_as",
)
def view(t: Tracer, node: torch.fx.Node) -> np.ndarray | None:
    """Reshape. A channel axis split in two (``view(n, g, c // g, h, w)``) keeps the outer
    factor fixed, as channel-shuffle code does: index ``j`` of every group is one channel."""
    ids = _first(t, node)
    if ids is None:
        return None
    before = varying_axes(ids)
    out = reshape_ids(ids, t.shape(node.args[0]), t.shape(node))
    after = varying_axes(out)
    if len(after) > len(before):
        outer = after[0]
        first = np.take(out, [0], outer)
        t.el.union(first, out)
    return out


@register_op("aten.permute", "aten.transpose", "aten.t", "aten.swapaxes", "aten.movedim")
def permute(t: Tracer, node: torch.fx.Node) -> np.ndarray | None:
    ids = _first(t, node)
    if ids is None:
        return None
    key = node.target.overloadpacket.__name__
    n = ids.ndim
    if key == "permute":
        return np.transpose(ids, [d % n for d in node.args[1]])
    if key == "t":
        return ids.T
    if key == "movedim":
        return np.moveaxis(ids, node.args[1], node.args[2])
    return np.swapaxes(ids, node.args[1] % n, node.args[2] % n)


@register_op("aten.unsqueeze")
def unsqueeze(t: Tracer, node: torch.fx.Node) -> np.ndarray | None:
    ids = _first(t, node)
    return None if ids is None else np.expand_dims(ids, node.args[1] % (ids.ndim + 1))


@register_op("aten.squeeze")
def squeeze(t: Tracer, node: torch.fx.Node) -> np.ndarray | None:
    ids = _first(t, node)
    if ids is None:
        return None
    return reshape_ids(ids, t.shape(node.args[0]), t.shape(node))


@register_op("aten.expand", "aten.expand_as")
def expand(t: Tracer, node: torch.fx.Node) -> np.ndarray | None:
    ids = _first(t, node)
    if ids is None:
        return None
    rank = len(t.shape(node))
    return ids.reshape((1,) * (rank - ids.ndim) + ids.shape)


@register_op("aten.repeat")
def repeat(t: Tracer, node: torch.fx.Node) -> np.ndarray | None:
    ids = _first(t, node)
    if ids is None:
        return None
    reps = list(node.args[1])
    ids = ids.reshape((1,) * (len(reps) - ids.ndim) + ids.shape)
    return np.tile(ids, [r if n > 1 else 1 for r, n in zip(reps, ids.shape, strict=True)])
