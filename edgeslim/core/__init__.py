"""Infrastructure shared by every algorithm package: errors, registries, I/O helpers."""

from edgeslim.core.errors import EdgeslimError, UnsupportedLayerError
from edgeslim.core.registry import Registry

__all__ = ["EdgeslimError", "Registry", "UnsupportedLayerError"]
