"""One table of layer types: everything edgeslim knows about ``nn.Conv2d`` lives in one entry.

Each :class:`LayerType` holds four parts, and states why when a part does not apply:

* ``layout``: which parameter axes hold output / input channels (structured pruning,
  :mod:`edgeslim.graph.layers`);
* ``codec``: how to describe the layer as JSON and rebuild it (saved models,
  :mod:`edgeslim.models.codecs`);
* ``twin``: the fake-quant twin class, by lazy ``"module:qualname"`` reference, so
  this low layer never imports ``edgeslim.quant`` (PTQ, :mod:`edgeslim.quant.ptq`);
* ``coding``: the weight that storage codings (power-of-two, k-means) rewrite
  (:mod:`edgeslim.quant.storage`).

The table lives in ``core`` because every package reads it and none may own it;
the built-in entries are in :mod:`edgeslim.core.layer_table`. Register your own
layer with :func:`register_layer_type`; a test walks the table and round-trips a
model made of every entry (prune -> save -> reload -> quantize -> export).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn
from torch.nn.utils import parametrize

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.registry import Registry

ParamAxes = tuple[tuple[str, int], ...]  # (attribute name, axis) pairs; the first is the weight
PARTS = ("layout", "codec", "twin", "coding")


@dataclass(frozen=True)
class LayerLayout:
    """How one layer type lays out its channels (for structured pruning).

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


@dataclass(frozen=True)
class ModuleCodec:
    """``describe(module) -> dict`` (JSON-able) and ``build(dict) -> nn.Module``."""

    describe: Callable[[nn.Module], dict]
    build: Callable[[dict], nn.Module]


@dataclass(frozen=True)
class WeightCoding:
    """The parameter a storage coding rewrites, and the axis of its per-channel side data."""

    param: str = "weight"
    channel_axis: int = 0


@dataclass(frozen=True)
class LayerType:
    """Every part edgeslim knows about one layer class; ``None`` parts say why in ``why_not``.

    Example:
        >>> t = layer_type_named("Conv2d")
        >>> t.layout.out[0], t.twin, t.coding.param
        (('weight', 0), 'edgeslim.quant.fake_quant:QuantConv2d', 'weight')
    """

    cls: type[nn.Module] | str  # the class, or "module:qualname" for one in a higher package
    layout: LayerLayout | None
    codec: ModuleCodec | None
    twin: str | None  # "module:qualname" of the fake-quant twin
    coding: WeightCoding | None
    why_not: tuple[tuple[str, str], ...] = ()  # (part, reason) for every None part

    def __post_init__(self) -> None:
        missing = [p for p in PARTS if getattr(self, p) is None and p not in dict(self.why_not)]
        if missing:
            raise ValueError(f"layer type {self.name}: say why {missing} do not apply (why_not)")

    @property
    def name(self) -> str:
        """The class name: the key saved manifests use."""
        return self.cls.__name__ if isinstance(self.cls, type) else self.cls.rpartition(":")[2]

    @property
    def key(self) -> str:
        return self.cls if isinstance(self.cls, str) else class_key(self.cls)

    def resolve(self) -> type[nn.Module]:
        return self.cls if isinstance(self.cls, type) else resolve_class(self.cls)

    def twin_class(self) -> type[nn.Module] | None:
        return resolve_class(self.twin) if self.twin else None


LAYER_TYPES: Registry[LayerType] = Registry("layer type")  # by class name
_BY_KEY: dict[str, LayerType] = {}  # by "module:qualname"
_BY_TWIN: dict[str, LayerType] = {}  # twin "module:qualname" -> its float type


def class_key(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def resolve_class(ref: str) -> type:
    """Import ``"module:qualname"``; only edgeslim's and torch's modules are imported."""
    module, _, qualname = ref.partition(":")
    if not module.startswith(("edgeslim.", "torch.")):
        raise EdgeslimError(f"refusing to import {module!r} for a layer type")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def register_layer_type(entry: LayerType) -> LayerType:
    """Add ``entry`` to the table; a class (or its name, or its twin) registered twice raises."""
    if entry.key in _BY_KEY:
        raise ValueError(f"layer type {entry.key} is already registered")
    if entry.twin and entry.twin in _BY_TWIN:
        raise ValueError(f"twin {entry.twin} already belongs to {_BY_TWIN[entry.twin].name}")
    LAYER_TYPES.register(entry.name, entry)
    _BY_KEY[entry.key] = entry
    if entry.twin:
        _BY_TWIN[entry.twin] = entry
    return entry


def layer_type_named(name: str) -> LayerType | None:
    _load_builtins()
    return LAYER_TYPES.get(name) if name in LAYER_TYPES else None


def layer_type_of(cls: type, *, inherit: bool = False) -> LayerType | None:
    """The entry of ``cls`` (exact class; with ``inherit``, its nearest registered base)."""
    _load_builtins()
    for c in cls.__mro__ if inherit else (cls,):
        entry = _BY_KEY.get(class_key(c))
        if entry is not None:
            return entry
    return None


def float_type_of_twin(cls: type) -> LayerType | None:
    """The float layer type whose fake-quant twin is ``cls`` (None if it is no twin)."""
    _load_builtins()
    return _BY_TWIN.get(class_key(cls))


def layer_types() -> list[LayerType]:
    _load_builtins()
    return [e for _, e in LAYER_TYPES.items()]


def describe_layers(model: nn.Module) -> dict[str, dict]:
    """``{qualified name: {"type": class name, "args": {...}}}`` for every codec-known layer.

    A fake-quant twin is described as its float type: loading builds the float
    layer and replaying the quantization method swaps the twin back in. A layer
    with parametrizations (sparsity masks) is described as its class before them.
    """
    out: dict[str, dict] = {}
    for name, mod in model.named_modules():
        if not name:
            continue
        cls = parametrize.type_before_parametrizations(mod)
        entry = layer_type_of(cls) or float_type_of_twin(cls)
        if entry is not None and entry.codec is not None:
            out[name] = {"type": entry.name, "args": entry.codec.describe(mod)}
    return out


def _load_builtins() -> None:
    import edgeslim.core.layer_table  # noqa: F401  (registers torch.nn's entries once)
