"""Per-op handlers: how each ATen op moves, joins, splits or consumes channel elements.

A handler is ``handler(tracer, node) -> ids`` (a list for multi-output ops) and
lives in :data:`OPS`, keyed like ``"aten.cat"``. Register one for a custom op with
:func:`register_op`; an op without a handler pins every channel it touches (or
raises :class:`~edgeslim.core.errors.UnsupportedLayerError` in strict mode).
Shape ops are in :mod:`edgeslim.graph.ops_shape`, channel-mixing ops in
:mod:`edgeslim.graph.ops_mixing`, layers with parameters (conv, linear, norms,
embedding) in :mod:`edgeslim.graph.layer_ops`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from edgeslim.core.registry import Registry
from edgeslim.graph.elements import compress
from edgeslim.graph.trace import Tracer, tensor_args

OpHandler = Callable[[Tracer, torch.fx.Node], object]
OPS: Registry[OpHandler] = Registry("op handler")


def register_op(*names: str) -> Callable[[OpHandler], OpHandler]:
    """Decorator: handle ATen ops ``names`` (e.g. ``"aten.relu"``) with the function."""

    def deco(fn: OpHandler) -> OpHandler:
        for n in names:
            OPS.register(n, fn)
        return fn

    return deco


def _first(t: Tracer, node: torch.fx.Node) -> np.ndarray | None:
    return t.get(node.args[0])


# Channel-preserving ops: the output's channels are the input's.
register_op(
    *(
        f"aten.{n}"
        for n in (
            "relu relu_ relu6 hardtanh hardtanh_ sigmoid sigmoid_ tanh silu silu_ gelu "
            "hardswish hardswish_ hardsigmoid leaky_relu leaky_relu_ elu selu celu mish "
            "softplus clamp clamp_ clamp_min clamp_max abs neg exp log sqrt rsqrt erf "
            "dropout dropout_ feature_dropout alpha_dropout clone contiguous detach alias "
            "_to_copy to lift_fresh_copy max_pool1d max_pool2d max_pool3d avg_pool1d "
            "avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d "
            "adaptive_avg_pool3d upsample_nearest1d upsample_nearest2d upsample_bilinear2d "
            "upsample_bicubic2d upsample_nearest3d _upsample_nearest_exact2d "
            "_upsample_bilinear2d_aa type_as"
        ).split()
    )
)(_first)

ACTIVATIONS = frozenset(
    f"aten.{n}"
    for n in "relu relu_ relu6 hardtanh hardtanh_ silu silu_ gelu hardswish hardswish_ "
    "leaky_relu leaky_relu_ elu mish".split()
)


@register_op(
    "aten.max_pool2d_with_indices",
    "aten.max_pool1d_with_indices",
    "aten.adaptive_max_pool2d",
    "aten.adaptive_max_pool1d",
)
def _pool_with_indices(t: Tracer, node: torch.fx.Node) -> list:
    ids = _first(t, node)
    return [ids, ids]


@register_op("aten.constant_pad_nd", "aten.pad", "aten.reflection_pad2d", "aten.replication_pad2d")
def _pad(t: Tracer, node: torch.fx.Node) -> np.ndarray | None:
    ids = _first(t, node)
    pads = node.args[1]
    if ids is not None:
        touched = [ids.ndim - 1 - i // 2 for i, p in enumerate(pads) if p]
        if any(ids.shape[ax] > 1 for ax in touched):  # padding the channel axis adds channels
            return t.unsupported_op(node, "pads a channel axis")
    return ids


@register_op(
    "aten.add",
    "aten.add_",
    "aten.sub",
    "aten.sub_",
    "aten.mul",
    "aten.mul_",
    "aten.div",
    "aten.div_",
    "aten.maximum",
    "aten.minimum",
    "aten.where",
    "aten.pow",
    "aten.rsub",
    "aten.addcmul",
    "aten.lerp",
    "aten.fmod",
    "aten.remainder",
)
def elementwise(t: Tracer, node: torch.fx.Node) -> np.ndarray | None:
    """Broadcasting elementwise op: index ``i`` of every full-size operand is one channel."""
    out_shape = t.shape(node)
    if out_shape is None:
        return None
    rank = len(out_shape)
    tracked: list[tuple[np.ndarray, tuple[int, ...]]] = []
    constants: list[tuple[int, ...]] = []
    for a in tensor_args(node):
        shape = t.shape(a)
        if shape is None:
            continue
        shape = (1,) * (rank - len(shape)) + shape
        ids = t.get(a)
        if ids is None:
            constants.append(shape)
        else:
            tracked.append((ids.reshape((1,) * (rank - ids.ndim) + ids.shape), shape))
    if not tracked:
        return t.pinned(rank)
    # an operand broadcast along an axis where another's channels vary is not coupled
    keep = []
    for ids, shape in tracked:
        broadcast = any(
            shape[ax] == 1 < out_shape[ax] and other.shape[ax] > 1
            for other, _ in tracked
            for ax in range(rank)
        )
        if broadcast:
            t.el.pin(ids)
        else:
            keep.append(ids)
    if not keep:
        return t.pinned(rank)
    for shape in constants:  # a full-size constant cannot be sliced with the channels
        for ids in keep:
            if any(shape[ax] > 1 and ids.shape[ax] > 1 for ax in range(rank)):
                t.el.pin(ids)
    base = keep[0]
    for other in keep[1:]:
        t.el.union(base, other)
    full = np.broadcast_shapes(*(k.shape for k in keep))
    return compress(np.broadcast_to(base, full))
