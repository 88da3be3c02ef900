"""The model zoo registry: name -> factory plus the facts every command needs.

Each architecture file registers its variants with :func:`register_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from edgeslim.core.registry import Registry


@dataclass(frozen=True)
class ZooEntry:
    """A zoo model: ``factory(num_classes=...)``, its default input, head size and task.

    ``task`` names an :mod:`edgeslim.tasks` entry: what the outputs are
    (``classification``: ``(batch, classes)``; ``segmentation``: ``(batch, classes, H, W)``).
    """

    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...]  # default example input, batch first, e.g. (1, 3, 224, 224)
    num_classes: int
    description: str = ""
    task: str = "classification"


ZOO: Registry[ZooEntry] = Registry("zoo model")


def register_model(
    name: str,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    description: str = "",
    task: str = "classification",
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``factory`` in the zoo under ``name``."""

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        entry = ZooEntry(factory, tuple(input_shape), num_classes, description, task)
        ZOO.register(name, entry)
        return factory

    return deco


def build_zoo_model(name: str, num_classes: int | None = None) -> nn.Module:
    """Build zoo model ``name`` with random weights (``num_classes`` overrides the head).

    Example:
        >>> m = build_zoo_model("resnet20", num_classes=10)
    """
    entry = ZOO.get(name)
    return entry.factory(num_classes=num_classes or entry.num_classes)
