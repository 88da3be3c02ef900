"""Module codecs: describe a layer's constructor arguments as JSON and rebuild it.

A compressed model differs from its source architecture only in its layers'
sizes (pruned channels, heads) or types (a fused or factorised layer). A saved
edgeslim model is therefore *source spec + per-layer descriptions + safetensors*:
loading rebuilds the source, swaps in every layer whose description differs, and
loads the weights strictly. No pickle, no code from the checkpoint is executed:
only the constructors registered here can run.

Later stages register codecs for the layers they introduce.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.registry import Registry


@dataclass(frozen=True)
class ModuleCodec:
    """``describe(module) -> dict`` (JSON-able) and ``build(dict) -> nn.Module``."""

    describe: Callable[[nn.Module], dict]
    build: Callable[[dict], nn.Module]


CODECS: Registry[ModuleCodec] = Registry("module codec")


def _conv(cls: type[nn.Module]) -> ModuleCodec:
    def describe(m: nn.Module) -> dict:
        return dict(
            in_channels=m.in_channels,
            out_channels=m.out_channels,
            kernel_size=list(m.kernel_size),
            stride=list(m.stride),
            padding=m.padding if isinstance(m.padding, str) else list(m.padding),
            dilation=list(m.dilation),
            groups=m.groups,
            bias=m.bias is not None,
            padding_mode=m.padding_mode,
        )

    return ModuleCodec(describe, lambda d: cls(**d))


def _norm(cls: type[nn.Module]) -> ModuleCodec:
    def describe(m: nn.Module) -> dict:
        return dict(
            num_features=m.num_features,
            eps=m.eps,
            momentum=m.momentum,
            affine=m.affine,
            track_running_stats=m.track_running_stats,
        )

    return ModuleCodec(describe, lambda d: cls(**d))


for _cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
    CODECS.register(_cls.__name__, _conv(_cls))
for _cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d):
    CODECS.register(_cls.__name__, _norm(_cls))

CODECS.register(
    "Linear",
    ModuleCodec(
        lambda m: dict(
            in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None
        ),
        lambda d: nn.Linear(**d),
    ),
)
CODECS.register(
    "GroupNorm",
    ModuleCodec(
        lambda m: dict(
            num_groups=m.num_groups, num_channels=m.num_channels, eps=m.eps, affine=m.affine
        ),
        lambda d: nn.GroupNorm(**d),
    ),
)
CODECS.register(
    "LayerNorm",
    ModuleCodec(
        lambda m: dict(
            normalized_shape=list(m.normalized_shape),
            eps=m.eps,
            elementwise_affine=m.elementwise_affine,
            bias=getattr(m, "bias", None) is not None,
        ),
        lambda d: nn.LayerNorm(**d),
    ),
)
CODECS.register(
    "Embedding",
    ModuleCodec(
        lambda m: dict(
            num_embeddings=m.num_embeddings,
            embedding_dim=m.embedding_dim,
            padding_idx=m.padding_idx,
        ),
        lambda d: nn.Embedding(**d),
    ),
)
CODECS.register(
    "MultiheadAttention",
    ModuleCodec(
        lambda m: dict(
            embed_dim=m.embed_dim,
            num_heads=m.num_heads,
            dropout=m.dropout,
            bias=m.in_proj_bias is not None,
            kdim=m.kdim,
            vdim=m.vdim,
            batch_first=m.batch_first,
        ),
        lambda d: nn.MultiheadAttention(**d),
    ),
)


def describe_modules(model: nn.Module) -> dict[str, dict]:
    """``{qualified name: {"type": class name, "args": {...}}}`` for every codec-known layer."""
    out: dict[str, dict] = {}
    for name, mod in model.named_modules():
        kind = type(mod).__name__
        if name and kind in CODECS:
            out[name] = {"type": kind, "args": CODECS.get(kind).describe(mod)}
    return out


def apply_descriptions(model: nn.Module, descs: dict[str, dict]) -> nn.Module:
    """Swap in place every layer of ``model`` whose saved description differs."""
    current = describe_modules(model)
    for name, desc in descs.items():
        if current.get(name) == desc:
            continue
        if desc.get("type") not in CODECS:
            raise EdgeslimError(
                f"saved model has layer {name!r} of unknown type {desc.get('type')!r}"
            )
        try:
            new = CODECS.get(desc["type"]).build(desc["args"])
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


def _build_head_mha(d: dict) -> nn.Module:
    from edgeslim.graph.attention import HeadPrunableMHA  # a pruning output; imported on demand

    return HeadPrunableMHA(**d)


CODECS.register(
    "HeadPrunableMHA",
    ModuleCodec(
        lambda m: dict(
            embed_dim=m.embed_dim,
            num_heads=m.num_heads,
            head_dim=m.head_dim,
            bias=m.q_proj.bias is not None,
            batch_first=m.batch_first,
            dropout=m.dropout,
            kdim=m.k_proj.in_features,
            vdim=m.v_proj.in_features,
        ),
        _build_head_mha,
    ),
)
