"""One verb for every compression method: ``apply_(model, config)``, found by the config's type.

After torchao's ``quantize_(model, config)`` (``register_quantize_module_handler``
in ``torchao/quantization/transform_module.py``): a method is a frozen config
dataclass plus one handler registered for that config *type*; unlike torchao,
registering a type twice raises.

Adding a method (QAT, unstructured / N:M / kernel-pattern masks, SVD / Tucker) is
one new file in its algorithm package, and nothing else changes::

    @dataclass(frozen=True)
    class NMSparsityConfig(MethodConfig):
        n: int = 2
        m: int = 4

    @register_method(NMSparsityConfig, "nm_sparsity")
    class NMSparsity(Method):
        def apply_(self, model, config, layers, calib):
            for name, mod, cfg in layers.select(model, supported=(nn.Conv2d, nn.Linear)):
                ...                                # change ``mod`` (or swap it) as ``cfg`` says
                layers.done(name, cfg)             # recorded: replayed on load
            return model, {"sparsity": ...}        # the model and what was done

        def restore_(self, model, config, layers, details):  # optional: structure only
            ...                                    # e.g. add the mask parametrizations
            return model

Then import the file from its package's ``__init__`` (so that the config's import
registers the handler). ``restore_`` rebuilds the method's *structure* (swapped
layers, inserted quantizers, parametrizations) on a freshly built float model so
that a saved model reloads by replaying its methods and then loading its
``state_dict`` strictly (:mod:`edgeslim.models.saved`); a method that only
changes values (weight codings) keeps the default, which does nothing.

Per-layer overrides are an ordered map from an exact module name or a regex that
matches the whole name to a config of the same type, or ``None`` to leave that
layer alone; the first matching entry wins, then ``filter_fn(module, name)``
decides, then the main config applies.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from edgeslim.core.configs import from_json, to_json
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.layer_types import describe_layers
from edgeslim.core.registry import Registry
from edgeslim.core.select import compile_pattern, matches


class MethodConfig:
    """Base of every method config; subclasses are ``@dataclass(frozen=True)``."""


FilterFn = Callable[[nn.Module, str], bool]
Overrides = Mapping[str, "MethodConfig | None"] | Sequence[tuple[str, "MethodConfig | None"]]


class LayerPlan:
    """Which config each layer gets: overrides, then ``filter_fn``, then the default.

    Handlers walk candidate layers with :meth:`select` and report each layer they
    changed with :meth:`done`; the record keeps exactly those, so a reload replays
    the same layers without the (unserializable) ``filter_fn``.
    """

    def __init__(
        self,
        default: MethodConfig,
        overrides: tuple[tuple[str, MethodConfig | None], ...] = (),
        filter_fn: FilterFn | None = None,
        explicit: dict[str, MethodConfig] | None = None,
    ) -> None:
        self.default = default
        self.overrides = overrides
        self.filter_fn = filter_fn
        self.explicit = explicit
        self.applied: dict[str, MethodConfig] = {}

    def config_for(self, name: str, module: nn.Module) -> MethodConfig | None:
        """The config of layer ``name``; None leaves it alone."""
        if self.explicit is not None:
            return self.explicit.get(name)
        for pattern, cfg in self.overrides:
            if matches(name, pattern):
                return cfg
        if self.filter_fn is not None and not self.filter_fn(module, name):
            return None
        return self.default

    def select(
        self, model: nn.Module, supported: Callable[[nn.Module], bool] | tuple[type, ...]
    ) -> Iterator[tuple[str, nn.Module, MethodConfig]]:
        """``(name, module, config)`` for every supported layer that gets a config.

        ``supported`` is a predicate or a tuple of exact types. The root itself has
        the name ``""``. The list is taken before the first item is yielded, so the
        handler may swap layers.
        """
        ok = supported if callable(supported) else (lambda m: type(m) in supported)
        picked = []
        for name, mod in model.named_modules():
            if ok(mod):
                cfg = self.config_for(name, mod)
                if cfg is not None:
                    picked.append((name, mod, cfg))
        yield from picked

    def done(self, name: str, config: MethodConfig) -> None:
        """Record that layer ``name`` was changed with ``config``."""
        self.applied[name] = config


class Method:
    """The handler of one config type. Subclasses implement :meth:`apply_`."""

    name: str = ""
    config_type: type[MethodConfig]

    def apply_(
        self, model: nn.Module, config: MethodConfig, layers: LayerPlan, calib: Any
    ) -> tuple[nn.Module, dict]:
        """Transform ``model`` in place; return the model (maybe a new root) and details."""
        raise NotImplementedError

    def restore_(
        self, model: nn.Module, config: MethodConfig, layers: LayerPlan, details: dict
    ) -> nn.Module:
        """Rebuild the structure :meth:`apply_` made, without data (values come from a load).

        ``details`` is what :meth:`apply_` returned (e.g. where it placed quantizers).
        """
        return model


METHODS: Registry[Method] = Registry("compression method")
_BY_TYPE: dict[type, Method] = {}


def register_method(config_type: type[MethodConfig], name: str) -> Callable[[type], type]:
    """Class decorator: register a :class:`Method` subclass as the handler of ``config_type``.

    ``name`` is what saved models write; both the name and the type must be new.
    """

    def deco(cls: type[Method]) -> type[Method]:
        if config_type in _BY_TYPE:
            raise ValueError(f"config type {config_type.__name__} already has a method")
        handler = cls()
        handler.name, handler.config_type = name, config_type
        METHODS.register(name, handler)
        _BY_TYPE[config_type] = handler
        return cls

    return deco


def method_for(config: MethodConfig) -> Method:
    """The handler registered for ``type(config)``."""
    handler = _BY_TYPE.get(type(config))
    if handler is None:
        raise EdgeslimError(
            f"no compression method is registered for {type(config).__name__}; "
            f"known: {', '.join(METHODS.names()) or '(none)'}"
        )
    return handler


@dataclass
class Record:
    """What one method did: its config, the config of every layer it changed, details.

    ``details`` is JSON-able and method specific (storage report, graph mode, ...).
    :meth:`to_dict` is what a saved model's manifest keeps to replay the method.
    """

    method: str
    config: MethodConfig
    layers: dict[str, MethodConfig] = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    # layer descriptions of the model the method was applied to (its pruned widths):
    # a reload rebuilds exactly that structure before replaying the method
    before: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        configs: list = []
        index: dict[str, int] = {}
        for name, cfg in self.layers.items():
            js = to_json(cfg)
            if js not in configs:
                configs.append(js)
            index[name] = configs.index(js)
        return {
            "method": self.method,
            "package": type(METHODS.get(self.method)).__module__,
            "config": to_json(self.config),
            "layer_configs": configs,
            "layers": index,
            "details": to_json(self.details),
            "before": self.before,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Record:
        package = str(d.get("package", ""))
        if d.get("method") not in METHODS and package.startswith("edgeslim."):
            importlib.import_module(package)  # registers the method (edgeslim's own only)
        handler = METHODS.get(d["method"])
        ct = handler.config_type
        configs = [from_json(ct, _as_saved(ct, c)) for c in d.get("layer_configs", [])]
        layers = {name: configs[i] for name, i in d.get("layers", {}).items()}
        config = from_json(ct, _as_saved(ct, d["config"]))
        return cls(d["method"], config, layers, d.get("details", {}), d.get("before", {}))


def _as_saved(config_type: type, data: Any) -> Any:
    """A saved config as it was applied: a record written before ``reduce_range`` existed
    was applied with full-range 8-bit weights, so a missing key reads as False (left to
    None it would be decided anew on the loading CPU and could change the weights' grid).
    """
    names = {f.name for f in dataclasses.fields(config_type)}
    if isinstance(data, dict) and "reduce_range" in names and "reduce_range" not in data:
        return {**data, "reduce_range": False}
    return data


@dataclass
class Applied:
    """The result of :func:`apply_`: the transformed model and the record of what was done."""

    model: nn.Module
    record: Record

    def __iter__(self):  # ``model, record = apply_(...)``
        return iter((self.model, self.record))


def _overrides(config: MethodConfig, overrides: Overrides | None) -> tuple:
    items = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides or ())
    out = []
    for item in items:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise EdgeslimError(f"an override is (name or regex, config or None), got {item!r}")
        pattern, cfg = item
        compile_pattern(pattern)
        if cfg is not None and type(cfg) is not type(config):
            raise EdgeslimError(
                f"override {pattern!r}: {type(cfg).__name__} given for a "
                f"{type(config).__name__} run; apply other methods in their own call"
            )
        out.append((pattern, cfg))
    return tuple(out)


def apply_(
    model: nn.Module,
    config: MethodConfig,
    *,
    overrides: Overrides | None = None,
    filter_fn: FilterFn | None = None,
    calib: Any = None,
) -> Applied:
    """Apply the method of ``config`` to ``model`` in place.

    Args:
        model: the model; its layers are changed in place. Use the returned model:
            some methods return a new root (a traced graph, a dtype wrapper) that
            shares the changed layers.
        config: a registered method config (e.g. ``edgeslim.quant.PTQConfig``).
        overrides: ordered ``{name or regex: config of the same type, or None}``;
            the first match wins, ``None`` leaves the layer alone.
        filter_fn: ``filter_fn(module, name) -> bool``; False leaves the layer alone.
        calib: calibration data (an iterable of batches) for methods that need it.

    Returns:
        :class:`Applied` (``model, record = apply_(...)``).

    Example:
        >>> from edgeslim.quant import PowerOfTwoConfig
        >>> m = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> m, rec = apply_(m, PowerOfTwoConfig(bits=4), overrides={"2": None})
        >>> rec.method, list(rec.layers)
        ('power_of_two', ['0'])
    """
    handler = method_for(config)
    plan = LayerPlan(config, _overrides(config, overrides), filter_fn)
    before = describe_layers(model)
    out, details = handler.apply_(model, config, plan, calib)
    return Applied(out, Record(handler.name, config, dict(plan.applied), details, before))


def apply(model: nn.Module, config: MethodConfig, **kwargs: Any) -> Applied:
    """:func:`apply_` on a deep copy: the caller's model is not modified.

    Example:
        >>> from edgeslim.quant import KMeansConfig
        >>> m = nn.Sequential(nn.Linear(16, 16))
        >>> new, rec = apply(m, KMeansConfig(bits=2))
        >>> len(new[0].weight.unique()) <= 4 < len(m[0].weight.unique())
        True
    """
    return apply_(copy.deepcopy(model), config, **kwargs)


def restore_(
    model: nn.Module,
    records: Sequence[Record | dict],
    rebuild: Callable[[nn.Module, dict], None] | None = None,
) -> nn.Module:
    """Replay the structure of ``records`` (in order) on ``model``; returns the new root.

    Used when loading a saved model: the source architecture is built, then for
    each method ``rebuild(model, record.before)`` gives the layers the widths
    they had when the method was applied (pruned channels, see
    :func:`edgeslim.models.codecs.apply_descriptions`) and the method's
    structural part is replayed; then the weights (scales, zero points, bit
    widths included) are loaded strictly.
    """
    for r in records:
        rec = r if isinstance(r, Record) else Record.from_dict(r)
        if rebuild is not None:
            rebuild(model, rec.before)
        handler = METHODS.get(rec.method)
        plan = LayerPlan(rec.config, explicit=dict(rec.layers))
        model = handler.restore_(model, rec.config, plan, rec.details)
    return model
