"""Module codecs: describe a layer's constructor arguments as JSON and rebuild it.

A compressed model differs from its source architecture only in its layers'
sizes (pruned channels, heads) or types (a fused or factorised layer). A saved
edgeslim model is therefore *source spec + per-layer descriptions + safetensors*:
loading rebuilds the source, swaps in every layer whose description differs, and
loads the weights strictly. No pickle, no code from the checkpoint is executed:
only the constructors of the layer-type table (:mod:`edgeslim.core.layer_types`)
can run.

A fake-quant twin (``QuantConv2d``) is described as its float type (``Conv2d``):
loading rebuilds the float layer, and replaying the quantization method swaps
the twin back in (:mod:`edgeslim.models.saved`).
"""

from __future__ import annotations

from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.layer_types import describe_layers, layer_type_named


def describe_modules(model: nn.Module) -> dict[str, dict]:
    """``{qualified name: {"type": class name, "args": {...}}}`` for every codec-known layer."""
    return describe_layers(model)


def apply_descriptions(model: nn.Module, descs: dict[str, dict]) -> nn.Module:
    """Swap in place every layer of ``model`` whose saved description differs."""
    current = describe_modules(model)
    for name, desc in descs.items():
        if current.get(name) == desc:
            continue
        entry = layer_type_named(str(desc.get("type")))
        if entry is None or entry.codec is None:
            raise EdgeslimError(
                f"saved model has layer {name!r} of unknown type {desc.get('type')!r}"
            )
        try:
            new = entry.codec.build(desc["args"])
        except TypeError as e:
            raise EdgeslimError(f"saved model: cannot rebuild layer {name!r}: {e}") from None
        set_submodule(model, name, new)
    return model


def set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the submodule at dotted path ``name`` with ``new``."""
    parent_name, _, child = name.rpartition(".")
    try:
        parent = model.get_submodule(parent_name) if parent_name else model
    except AttributeError:
        raise EdgeslimError(f"saved model names layer {name!r}, which the source lacks") from None
    setattr(parent, child, new)
