"""Handlers for ops that mix channels (reductions, softmax, matmul, gather) or make tensors.

A value that depends on several channels at once cannot follow a narrower input, so
the channels involved are pinned; factory ops create pinned constants.
"""

from __future__ import annotations

import numpy as np
import torch

from edgeslim.graph.ops import _first, register_op
from edgeslim.graph.trace import Tracer, tensor_args


@register_op(
    "aten.mean",
    "aten.sum",
    "aten.amax",
    "aten.amin",
    "aten.max",
    "aten.min",
    "aten.std",
    "aten.var",
    "aten.logsumexp",
    "aten.norm",
    "aten.prod",
    "aten.argmax",
    "aten.argmin",
    "aten.all",
    "aten.any",
)
def reduce(t: Tracer, node: torch.fx.Node) -> object:
    """A reduction mixes the channels of every reduced axis: those are pinned."""
    ids = _first(t, node)
    out_shape = t.shape(node)
    val = node.meta.get("val")
    multi = isinstance(val, (tuple, list))
    if multi:
        out_shape = tuple(val[0].shape)
    if ids is None or out_shape is None:
        return None
    in_shape = t.shape(node.args[0])
    dims = node.args[1] if len(node.args) > 1 else None
    if dims is None or dims == []:
        dims = list(range(len(in_shape)))
    dims = [dims] if isinstance(dims, int) else list(dims)
    dims = sorted(d % len(in_shape) for d in dims)
    if any(ids.shape[d] > 1 for d in dims):
        t.el.pin(ids)
    out = np.take(ids, [0], dims[0]) if dims else ids
    for d in dims[1:]:
        out = np.take(out, [0], d)
    if len(out_shape) < len(in_shape):
        out = out.reshape([s for i, s in enumerate(out.shape) if i not in dims] or ())
    return [out, out] if multi else out


@register_op(
    "aten.softmax",
    "aten._softmax",
    "aten.log_softmax",
    "aten._log_softmax",
    "aten.cumsum",
    "aten.normalize",
)
def along_dim(t: Tracer, node: torch.fx.Node) -> np.ndarray | None:
    """Ops that mix values along one axis: channels along it are pinned."""
    ids = _first(t, node)
    if ids is not None and ids.ndim:
        dim = node.args[1] % ids.ndim
        if ids.shape[dim] > 1:
            t.el.pin(ids)
    return ids


@register_op(
    "aten.matmul",
    "aten.bmm",
    "aten.mm",
    "aten.baddbmm",
    "aten.addmm",
    "aten.einsum",
    "aten.scaled_dot_product_attention",
    "aten.index",
    "aten.index_select",
    "aten.gather",
    "aten.flip",
    "aten.roll",
    "aten.sort",
    "aten.topk",
)
def mixing(t: Tracer, node: torch.fx.Node) -> object:
    """Ops that move values across channels in data- or weight-dependent ways: pinned.

    (A Linear with a module behind it is ``aten.linear``; attention blocks are
    handled whole by :mod:`edgeslim.graph.modules`.)
    """
    for a in tensor_args(node):
        ids = t.get(a)
        if ids is not None:
            t.el.pin(ids)
    val = node.meta.get("val")
    if isinstance(val, (tuple, list)):
        return [t.pinned(len(v.shape)) for v in val if isinstance(v, torch.Tensor)]
    shape = t.shape(node)
    return t.pinned(len(shape)) if shape is not None else None


@register_op(
    *(
        f"aten.{n}"
        for n in "arange zeros ones full empty zeros_like ones_like full_like "
        "empty_like rand randn rand_like randn_like scalar_tensor tensor lift_fresh "
        "sym_size sym_numel".split()
    )
)
def factory(t: Tracer, node: torch.fx.Node) -> np.ndarray | None:
    shape = t.shape(node)
    return t.pinned(len(shape)) if shape is not None else None
