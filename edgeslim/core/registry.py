"""Named registries: the only module-level state edgeslim keeps.

Every pluggable thing (zoo model, dataset, criterion, calibrator, loss, recipe
stage) lives in a :class:`Registry`. Adding a method means adding one file that
registers itself; registering the same name twice is an error so that two
plugins can never silently shadow each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from edgeslim.core.errors import EdgeslimError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object map that refuses duplicates and names its choices on a miss.

    Example:
        >>> CRITERIA = Registry("criterion")
        >>> @CRITERIA.register("l1")
        ... def l1(w): return w.abs().sum(1)
        >>> CRITERIA.get("l1") is l1
        True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; without ``obj`` acts as a decorator."""
        if obj is not None:
            self._add(name, obj)
            return obj

        def deco(o: T) -> T:
            self._add(name, o)
            return o

        return deco

    def _add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            choices = ", ".join(sorted(self._items)) or "(none)"
            raise EdgeslimError(f"unknown {self.kind} {name!r}; choose one of: {choices}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())
