"""DistilBERT's cosine hidden-state loss.

Sanh, Debut, Chaumond, Wolf, "DistilBERT, a distilled version of BERT: smaller,
faster, cheaper and lighter", NeurIPS EMC^2 Workshop 2019: a cosine embedding
loss aligns the directions of the student's and teacher's hidden-state vectors::

    L_cos = beta * sum_pairs mean_tokens (1 - cos(h_s, h_t))

DistilBERT's student has the teacher's width; when widths differ a learned
linear adapter maps ``h_s`` first. Combined with KD (``kd+cosine``) this is the
DistilBERT objective without the masked-LM term.
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


def cosine_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor) -> torch.Tensor:
    """``mean(1 - cos)`` over every vector (last dim; channels for 4-D maps).

    Example:
        >>> h = torch.randn(2, 5, 8)
        >>> float(cosine_loss(h, 3 * h)) < 1e-6
        True
    """
    dim = 1 if student_hidden.dim() == 4 else -1
    return (1 - F.cosine_similarity(student_hidden.float(), teacher_hidden.float(), dim=dim)).mean()


@LOSSES.register("cosine")
class HiddenCosine(DistillLoss):
    """``beta * sum_pairs cosine_loss(adapter(h_s), h_t)``."""

    needs_layers = True
    default_beta = 1.0

    def __init__(self, layers: Sequence[LayerPair], adapters: Sequence[nn.Module], beta: float):
        super().__init__()
        self.student_layers, self.teacher_layers = split_layers(layers)
        self.adapters = nn.ModuleList(adapters)
        self.beta = beta

    @classmethod
    def build(cls, spec: LossSpec, probe: Probe) -> HiddenCosine:
        s, t = probe.student.features, probe.teachers[0].features
        adapters = [make_adapter(tuple(s[a].shape), tuple(t[b].shape)) for a, b in spec.layers]
        return cls(spec.layers, adapters, cls.default_beta if spec.beta is None else spec.beta)

    def forward(self, student: Outputs, teachers: Sequence[Outputs], y: torch.Tensor):
        t = teachers[0].features
        terms = [
            cosine_loss(adapter(student.features[a]), t[b])
            for adapter, a, b in zip(
                self.adapters, self.student_layers, self.teacher_layers, strict=True
            )
        ]
        return self.beta * sum(terms)
