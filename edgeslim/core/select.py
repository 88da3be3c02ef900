"""Module selection and swapping: the one place that matches layer names and replaces layers.

A pattern is an exact module name or a regular expression that must match the
WHOLE name (``"layer1.0.conv1"``, ``r"layer\\d\\.0\\..*"``). Per-layer overrides in
every method (pruning ``--override``/``--ignore``, quantization exclusions, the
method registry) use these rules, so one spelling selects the same layers everywhere.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from torch import nn

from edgeslim.core.errors import EdgeslimError


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern:
    """The compiled regex of ``pattern``; a clear error when it is not a valid regex."""
    try:
        return re.compile(pattern)
    except re.error as e:
        raise EdgeslimError(f"bad layer pattern {pattern!r}: {e}") from None


def matches(name: str, pattern: str) -> bool:
    """``True`` when ``pattern`` is ``name`` or a regex matching all of it.

    Example:
        >>> matches("layer1.0.conv1", r"layer1\\..*"), matches("layer1.0.conv1", "layer1")
        (True, False)
    """
    return pattern == name or compile_pattern(pattern).fullmatch(name) is not None


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    """``True`` when any of ``patterns`` selects ``name`` (see :func:`matches`)."""
    return any(matches(name, p) for p in patterns)


def swap_module_(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Replace the submodule ``name`` of ``model`` by ``new`` in place; return the old one.

    Example:
        >>> m = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        >>> type(swap_module_(m, "1", nn.GELU())).__name__, type(m[1]).__name__
        ('ReLU', 'GELU')
    """
    if not name:
        raise EdgeslimError("cannot swap the root module in place")
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, new)
    return old
