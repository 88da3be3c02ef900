"""Distillation losses, one family per file; importing this package registers them all.

Example:
    >>> from edgeslim.distill.losses import LOSSES
    >>> LOSSES.names()[:6]
    ['at', 'cosine', 'det_feature', 'fastbert', 'fastbert-attn', 'feature']
"""

from edgeslim.distill.losses import (  # noqa: F401 (registers)
    attention,
    detector_features,
    fastbert,
    fitnets,
    hidden_cosine,
    kd,
    logits_mse,
    multi_teacher,
    self_distill,
    soft_ce,
    tinybert,
)
from edgeslim.distill.losses.base import LOSSES, DistillLoss, LossSpec, Probe

__all__ = ["LOSSES", "DistillLoss", "LossSpec", "Probe"]
