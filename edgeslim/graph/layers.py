"""Layer specs: which parameter axes hold a layer's output and input channels.

A :class:`LayerSpec` is the layout part of a layer type's entry in the one
table of layer types (:mod:`edgeslim.core.layer_types`). The
graph uses it to tie channels to parameters, criteria get per-channel weight rows
from it (so a criterion never branches on Conv versus Linear), and physical
removal uses it to slice parameters and fix the constructor attributes, so the
result is a plain layer of the smaller size that the saved-model codecs rebuild.

Register a spec for your own per-channel layer with :func:`register_layer`.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeslim.core.layer_types import (
    LayerLayout,
    LayerType,
    ParamAxes,
    layer_type_of,
    layer_types,
    register_layer_type,
)

LayerSpec = LayerLayout  # the pruning part of a layer type's entry

__all__ = ["LayerSpec", "ParamAxes", "layer_key", "register_layer", "spec_of"]


class _Layouts:
    """Read-only view of the layouts in the layer-type table, by :func:`layer_key`."""

    def get(self, key: str) -> LayerSpec:
        for e in layer_types():
            if e.key.replace(":", ".") == key and e.layout is not None:
                return e.layout
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return any(e.key.replace(":", ".") == key and e.layout is not None for e in layer_types())


LAYERS = _Layouts()


def register_layer(cls: type[nn.Module], spec: LayerSpec) -> None:
    """Teach the pruner a layer type: a table entry with only its layout.

    Register a full :class:`~edgeslim.core.layer_types.LayerType` instead to also
    save it (codec), quantize it (twin) and code its weights.

    Example:
        >>> class Scale(nn.Module):
        ...     def __init__(self, c): super().__init__(); self.s = nn.Parameter(torch.ones(c))
        >>> register_layer(Scale, LayerSpec(out=(("s", 0),), inp=(), resize=lambda m, k, n: None))
    """
    why = "registered with graph.register_layer (pruning layout only)"
    register_layer_type(
        LayerType(cls, spec, None, None, None, (("codec", why), ("twin", why), ("coding", why)))
    )


def layer_key(cls: type) -> str:
    """``"module.qualname"`` of ``cls`` (the key of graph handler registries)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def spec_of(module: nn.Module) -> LayerSpec | None:
    """The layout of ``module``'s class or of its nearest registered base class."""
    for cls in type(module).__mro__:
        entry = layer_type_of(cls)
        if entry is not None and entry.layout is not None:
            return entry.layout
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
