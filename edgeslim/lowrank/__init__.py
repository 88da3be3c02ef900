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

from edgeslim.lowrank.cp import CPConfig, CPNotConvergedWarning
from edgeslim.lowrank.dws import DWSConfig
from edgeslim.lowrank.evbmf import EVBMFResult, evbmf
from edgeslim.lowrank.ranks import RankRule, energy_rank, ratio_rank
from edgeslim.lowrank.spatial import SpatialSVDConfig
from edgeslim.lowrank.svd import SVDConfig
from edgeslim.lowrank.tucker2 import Tucker2Config

__all__ = [
    "CPConfig",
    "CPNotConvergedWarning",
    "DWSConfig",
    "EVBMFResult",
    "RankRule",
    "SVDConfig",
    "SpatialSVDConfig",
    "Tucker2Config",
    "energy_rank",
    "evbmf",
    "ratio_rank",
]
