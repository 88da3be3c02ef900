"""Model capture and channel-dependency analysis (torch.export, per-op handlers).

Example:
    >>> import torch
    >>> from edgeslim.graph import build_dependency_graph
    >>> from edgeslim.models import build_zoo_model
    >>> g = build_dependency_graph(build_zoo_model("resnet20"), torch.randn(1, 3, 32, 32))
"""

from edgeslim.graph.calls import ModelGraph, Scope
from edgeslim.graph.groups import DependencyGraph, Group, build_dependency_graph
from edgeslim.graph.layers import LAYERS, LayerSpec, register_layer
from edgeslim.graph.modules import MODULES, channelwise, opaque, register_module
from edgeslim.graph.ops import OPS, register_op

__all__ = [
    "LAYERS",
    "MODULES",
    "OPS",
    "DependencyGraph",
    "Group",
    "LayerSpec",
    "ModelGraph",
    "Scope",
    "build_dependency_graph",
    "channelwise",
    "opaque",
    "register_layer",
    "register_module",
    "register_op",
]
