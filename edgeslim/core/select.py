"""Module selection by name: an exact qualified name, or a regex that matches the whole name.

One rule for every place a user names layers (``exclude``, per-layer overrides,
``ignore``), so that ``"fc"`` means the same layer everywhere.
"""

from __future__ import annotations

import functools
import re

from torch import nn

from edgeslim.core.errors import EdgeslimError


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern:
    """The compiled regex of ``pattern``; a clear error when it is not a valid regex."""
    try:
        return re.compile(pattern)
    except re.error as e:
        raise EdgeslimError(f"bad layer pattern {pattern!r}: {e}") from None


def name_matches(pattern: str, name: str) -> bool:
    """True when ``pattern`` is ``name`` or a regex matching all of it.

    Example:
        >>> name_matches("fc", "fc"), name_matches(r"layer1\\..*", "layer1.0.conv1")
        (True, True)
        >>> name_matches("conv", "conv1")
        False
    """
    return pattern == name or compile_pattern(pattern).fullmatch(name) is not None


def set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the submodule at dotted path ``name`` of ``model`` with ``new``."""
    parent_name, _, child = name.rpartition(".")
    try:
        parent = model.get_submodule(parent_name) if parent_name else model
    except AttributeError:
        raise EdgeslimError(f"the model has no layer {parent_name!r}") from None
    setattr(parent, child, new)
