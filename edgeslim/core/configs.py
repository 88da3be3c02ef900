"""Frozen config dataclasses to and from JSON, without pickle and without executing code.

A saved model records the configs of the methods applied to it. :func:`to_json`
writes a dataclass as plain JSON (tuples become lists); :func:`from_json` rebuilds
it from the field type hints alone: nested dataclasses, ``X | None`` and
``tuple[...]`` are followed, and unknown keys are an error.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar, Union

from edgeslim.core.errors import EdgeslimError

T = TypeVar("T")


def to_json(obj: Any) -> Any:
    """A JSON-able copy of ``obj`` (dataclasses, tuples, lists, dicts, scalars).

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class C:
        ...     bits: int = 8
        ...     names: tuple[str, ...] = ("fc",)
        >>> to_json(C())
        {'bits': 8, 'names': ['fc']}
        >>> from_json(C, to_json(C())) == C()
        True
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise EdgeslimError(f"cannot write {type(obj).__name__} {obj!r} into a config")


def from_json(cls: type[T], data: Any) -> T:
    """Rebuild dataclass ``cls`` from :func:`to_json` output."""
    return _decode(cls, data, cls.__name__)


def _decode(hint: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return data
    if dataclasses.is_dataclass(hint):
        if not isinstance(data, dict):
            raise EdgeslimError(f"{where}: expected a mapping, got {data!r}")
        hints = typing.get_type_hints(hint)
        fields = {f.name for f in dataclasses.fields(hint) if f.init}
        unknown = set(data) - fields
        if unknown:
            raise EdgeslimError(f"{where}: unknown keys {sorted(unknown)}")
        kw = {k: _decode(hints[k], v, f"{where}.{k}") for k, v in data.items()}
        return hint(**kw)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if data is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _decode(a, data, where)
            except (EdgeslimError, TypeError, ValueError) as e:
                errors.append(str(e))
        raise EdgeslimError(f"{where}: {data!r} fits none of {hint} ({'; '.join(errors)})")
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(data, list | tuple):
            raise EdgeslimError(f"{where}: expected a list, got {data!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, where) for v in data)
        if len(args) != len(data):
            raise EdgeslimError(f"{where}: expected {len(args)} items, got {data!r}")
        return tuple(_decode(a, v, where) for a, v in zip(args, data, strict=True))
    if origin is dict:
        _, vt = typing.get_args(hint)
        return {k: _decode(vt, v, where) for k, v in data.items()}
    if origin is list:
        (vt,) = typing.get_args(hint)
        return [_decode(vt, v, where) for v in data]
    if hint is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if isinstance(hint, type) and not isinstance(data, hint):
        raise EdgeslimError(f"{where}: expected {hint.__name__}, got {data!r}")
    return data
