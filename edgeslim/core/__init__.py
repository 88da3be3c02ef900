"""Infrastructure shared by every algorithm package: errors, registries, I/O helpers,
the method registry (``apply_(model, config)``) and the table of layer types."""

from edgeslim.core.errors import EdgeslimError, UnsupportedLayerError
from edgeslim.core.methods import Applied, Method, MethodConfig, Record, apply, apply_
from edgeslim.core.registry import Registry

__all__ = [
    "Applied",
    "EdgeslimError",
    "Method",
    "MethodConfig",
    "Record",
    "Registry",
    "UnsupportedLayerError",
    "apply",
    "apply_",
]
