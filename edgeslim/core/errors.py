"""User-facing errors.

An :class:`EdgeslimError` is a problem with the user's input (bad model spec,
missing file, wrong shape, malformed recipe). The CLI prints its message on one
line and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgeslimError(Exception):
    """A clear, one-line, user-facing error."""


class UnsupportedLayerError(EdgeslimError):
    """A layer or op edgeslim cannot handle; the message names the layer."""
