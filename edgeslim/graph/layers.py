"""Layer specs: which parameter axes hold a layer's output and input channels.

A :class:`LayerSpec` is the only place that knows a layer type's layout. The
graph uses it to tie channels to parameters, criteria get per-channel weight rows
from it (so a criterion never branches on Conv versus Linear), and physical
removal uses it to slice parameters and fix the constructor attributes, so the
result is a plain layer of the smaller size that the saved-model codecs rebuild.

Register a spec for your own per-channel layer with :func:`register_layer`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from edgeslim.core.registry import Registry

ParamAxes = tuple[tuple[str, int], ...]  # (attribute name, axis) pairs; the first is the weight


@dataclass(frozen=True)
class LayerSpec:
    """How one layer type lays out its channels.

    Attributes:
        out: parameters/buffers indexed by output channel; the first is scored.
        inp: parameters indexed by input channel (empty: per-channel layer).
        resize: ``resize(module, kind, new_size)`` fixes constructor attributes.
        scale: attribute of a per-channel scale (BN gamma), for BN-scale scoring.
    """

    out: ParamAxes
    inp: ParamAxes
    resize: Callable[[nn.Module, str, int], None]
    scale: str | None = None


LAYERS: Registry[LayerSpec] = Registry("layer spec")


def register_layer(cls: type[nn.Module], spec: LayerSpec) -> None:
    """Teach the pruner a layer type (keyed by the class's qualified name).

    Example:
        >>> class Scale(nn.Module):
        ...     def __init__(self, c): super().__init__(); self.s = nn.Parameter(torch.ones(c))
        >>> register_layer(Scale, LayerSpec(out=(("s", 0),), inp=(), resize=lambda m, k, n: None))
    """
    LAYERS.register(layer_key(cls), spec)


def layer_key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def spec_of(module: nn.Module) -> LayerSpec | None:
    for cls in type(module).__mro__:
        if layer_key(cls) in LAYERS:
            return LAYERS.get(layer_key(cls))
    return None


def axes_of(spec: LayerSpec, kind: str) -> ParamAxes:
    return spec.out if kind == "out" else spec.inp


def rows(
    module: nn.Module, spec: LayerSpec, kind: str, tensors: dict[str, torch.Tensor] | None = None
):
    """Per-channel rows ``[n, k]`` of the scored parameter for ``kind`` ("out" or "in").

    ``tensors`` maps attribute names to same-shaped stand-ins (gradients, Fisher);
    default: the parameters themselves.
    """
    attr, axis = axes_of(spec, kind)[0]
    t = tensors[attr] if tensors is not None else getattr(module, attr)
    return t.detach().movedim(axis, 0).reshape(t.shape[axis], -1)


def slice_(module: nn.Module, spec: LayerSpec, kind: str, keep: torch.Tensor) -> None:
    """Keep only channels ``keep`` of ``kind`` in place (parameters and buffers)."""
    for attr, axis in axes_of(spec, kind):
        t = getattr(module, attr, None)
        if t is None:
            continue
        new = torch.index_select(t.detach(), axis, keep).clone()
        if isinstance(t, nn.Parameter):
            setattr(module, attr, nn.Parameter(new, requires_grad=t.requires_grad))
        else:
            module._buffers[attr] = new
    spec.resize(module, kind, int(keep.numel()))


def zero_(module: nn.Module, spec: LayerSpec, kind: str, drop: torch.Tensor) -> None:
    """Zero channels ``drop`` of the scored parameter (the masked-dense twin)."""
    attr, axis = axes_of(spec, kind)[0]
    with torch.no_grad():
        getattr(module, attr).index_fill_(axis, drop, 0.0)


def _resize_conv(m: nn.Module, kind: str, n: int) -> None:
    if kind == "out":
        if m.groups > 1 and m.groups == m.in_channels:  # depthwise: in follows out
            mult = m.out_channels // m.in_channels
            m.in_channels = m.groups = n // mult
        m.out_channels = n
    else:
        m.in_channels = n


def _resize_linear(m: nn.Module, kind: str, n: int) -> None:
    if kind == "out":
        m.out_features = n
    else:
        m.in_features = n


def _resize_norm(m: nn.Module, kind: str, n: int) -> None:
    m.num_features = n


def _resize_gn(m: nn.Module, kind: str, n: int) -> None:
    per_group = m.num_channels // m.num_groups
    m.num_groups, m.num_channels = n // per_group, n


def _resize_embedding(m: nn.Module, kind: str, n: int) -> None:
    m.embedding_dim = n


_NORM_OUT: ParamAxes = (("weight", 0), ("bias", 0), ("running_mean", 0), ("running_var", 0))
for _cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
    register_layer(_cls, LayerSpec((("weight", 0), ("bias", 0)), (("weight", 1),), _resize_conv))
for _cls in (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d):
    register_layer(_cls, LayerSpec((("weight", 1), ("bias", 0)), (("weight", 0),), _resize_conv))
for _cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
    register_layer(_cls, LayerSpec(_NORM_OUT, (), _resize_norm, scale="weight"))
for _cls in (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d):
    register_layer(_cls, LayerSpec(_NORM_OUT, (), _resize_norm, scale="weight"))
register_layer(nn.Linear, LayerSpec((("weight", 0), ("bias", 0)), (("weight", 1),), _resize_linear))
register_layer(nn.GroupNorm, LayerSpec((("weight", 0), ("bias", 0)), (), _resize_gn, "weight"))
register_layer(nn.Embedding, LayerSpec((("weight", 1),), (), _resize_embedding))
