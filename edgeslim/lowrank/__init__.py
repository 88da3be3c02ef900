"""Low-rank factorizations: SVD of linear layers; Tucker-2, CP, spatial SVD and
depthwise-separable replacements of convolutions.

Each is a frozen config applied with the one verb, :func:`edgeslim.core.methods.apply_`
(importing this package registers them all). The result is plain ``nn.Sequential``
of ``nn.Conv2d`` / ``nn.Linear``, so it saves, reloads, prunes, quantizes and exports
like any other model.

Example:
    >>> from torch import nn
    >>> from edgeslim.core.methods import apply
    >>> from edgeslim.lowrank import RankRule, SVDConfig
    >>> new, rec = apply(nn.Sequential(nn.Linear(32, 32)), SVDConfig(RankRule(rank=4)))
    >>> rec.method
    'lowrank_svd'
"""

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import METHODS, MethodConfig
from edgeslim.lowrank.cp import CPConfig, CPNotConvergedWarning
from edgeslim.lowrank.dws import DWSConfig
from edgeslim.lowrank.embedding import EmbeddingFactorConfig
from edgeslim.lowrank.evbmf import EVBMFResult, evbmf
from edgeslim.lowrank.ranks import RankRule, energy_rank, ratio_rank
from edgeslim.lowrank.sharing import LayerSharingConfig
from edgeslim.lowrank.spatial import SpatialSVDConfig
from edgeslim.lowrank.svd import SVDConfig
from edgeslim.lowrank.target import RatioForMacs, planned, ratio_for_macs
from edgeslim.lowrank.tucker2 import Tucker2Config

PREFIX = "lowrank_"  # registered method names: lowrank_svd, lowrank_tucker2, ...


def method_names() -> list[str]:
    """The short names of the registered factorizations (``svd``, ``tucker2``, ...)."""
    return [n.removeprefix(PREFIX) for n in METHODS.names() if n.startswith(PREFIX)]


def config_for(method: str, rule: RankRule, **kwargs) -> MethodConfig:
    """The config of factorization ``method`` (a short name) with rank rule ``rule``.

    Example:
        >>> cfg = config_for("spatial", RankRule(energy=0.9))
        >>> type(cfg).__name__, cfg.rule.energy
        ('SpatialSVDConfig', 0.9)
    """
    if method not in method_names():
        raise EdgeslimError(f"unknown factorization {method!r}; known: {', '.join(method_names())}")
    return METHODS.get(PREFIX + method).config_type(rule=rule, **kwargs)


__all__ = [
    "CPConfig",
    "CPNotConvergedWarning",
    "DWSConfig",
    "EVBMFResult",
    "EmbeddingFactorConfig",
    "LayerSharingConfig",
    "RankRule",
    "RatioForMacs",
    "SVDConfig",
    "SpatialSVDConfig",
    "Tucker2Config",
    "config_for",
    "energy_rank",
    "evbmf",
    "method_names",
    "planned",
    "ratio_for_macs",
    "ratio_rank",
]
