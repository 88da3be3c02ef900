"""FitNets feature hints: regress teacher features from student features.

Romero, Ballas, Kahou, Chassang, Gatta, Bengio, "FitNets: Hints for Thin Deep
Nets", ICLR 2015. For every mapped pair (student guided layer, teacher hint
layer) a learned regressor ``r`` (a 1x1 convolution for feature maps, a linear
layer for vectors/tokens; the identity when widths already agree) maps the
student feature to the teacher's width::

    L_hint = sum_pairs mean((r(F_s) - F_t)^2)

Used in one stage with the task loss, ``CE + beta * L_hint``, as in the FitNet
baseline of Tian et al., "Contrastive Representation Distillation", ICLR 2020.
They use ``beta = 100`` on a single hint layer at lr 0.05; here the hint is
summed over every mapped stage and trained at the trainer's lr, where 100
diverges, so the default is ``beta = 1`` (hint and CE start at the same scale).
Layers are mapped by module name, so a student that is the teacher pruned by
some ratio maps ``layer2 -> layer2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeslim.distill.adapters import make_adapter
from edgeslim.distill.hooks import Outputs
from edgeslim.distill.losses.base import (
    LOSSES,
    DistillLoss,
    LayerPair,
    LossSpec,
    Probe,
    split_layers,
)


def match_spatial(s: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the larger of two feature maps down to the other's size (4-D only)."""
    if s.dim() != 4 or s.shape[-2:] == t.shape[-2:]:
        return s, t
    if s.shape[-1] > t.shape[-1]:
        return F.adaptive_avg_pool2d(s, t.shape[-2:]), t
    return s, F.adaptive_avg_pool2d(t, s.shape[-2:])


def hint_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """``mean((F_s - F_t)^2)`` after spatial matching; ``F_s`` already adapted.

    Example:
        >>> f = torch.randn(2, 4, 8, 8)
        >>> float(hint_loss(f, f))
        0.0
    """
    s, t = match_spatial(student_feat.float(), teacher_feat.float())
    return F.mse_loss(s, t)


@LOSSES.register("feature")
class FitNetsHint(DistillLoss):
    """``beta * sum_pairs hint_loss(adapter(F_s), F_t)``; adapters are learned."""

    needs_layers = True
    default_beta = 1.0

    def __init__(self, layers: Sequence[LayerPair], adapters: Sequence[nn.Module], beta: float):
        super().__init__()
        self.student_layers, self.teacher_layers = split_layers(layers)
        self.adapters = nn.ModuleList(adapters)
        self.beta = beta

    @classmethod
    def build(cls, spec: LossSpec, probe: Probe) -> FitNetsHint:
        s, t = probe.student.features, probe.teachers[0].features
        adapters = [make_adapter(tuple(s[a].shape), tuple(t[b].shape)) for a, b in spec.layers]
        beta = cls.default_beta if spec.beta is None else spec.beta
        return cls(spec.layers, adapters, beta)

    def forward(self, student: Outputs, teachers: Sequence[Outputs], y: torch.Tensor):
        t = teachers[0].features
        terms = [
            hint_loss(adapter(student.features[a]), t[b])
            for adapter, a, b in zip(
                self.adapters, self.student_layers, self.teacher_layers, strict=True
            )
        ]
        return self.beta * sum(terms)
