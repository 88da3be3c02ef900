"""TinyBERT's layer-mapped transformer distillation: hidden states and attention maps.

Jiao, Yin, Shang, Jiang, Chen, Li, Wang, Liu, "TinyBERT: Distilling BERT for
Natural Language Understanding", Findings of EMNLP 2020. Student layer ``m`` learns
from teacher layer ``g(m) = m * N / M`` (uniform mapping; 0 is the embeddings)::

    L_embd = MSE(E_s W_e, E_t)          W_e: learned linear map (identity if widths agree)
    L_hidn = MSE(H_s W_h, H_t)          W_h: one learned map per mapped layer
    L_attn = 1/h sum_heads MSE(A_s, A_t)
    L      = beta * (L_embd + sum_layers L_hidn + sum_layers L_attn)

The embedding pair is the hidden-state pair of layer 0 (``g(0) = 0``): both are the
same MSE through a learned projection (:func:`projected_mse`). A pair whose layer
names carry a tuple selector (``...attention.self#1``) is an attention pair; the rest
are hidden-state pairs. The loss reads no labels: with ``hard_labels=False`` in the
:class:`~edgeslim.distill.distiller.Distiller` it is the paper's *general*
distillation (unlabeled corpus) and the intermediate half of its *task* stage; the
prediction half is :mod:`edgeslim.distill.losses.soft_ce`. The paper matches the
*unnormalised* attention scores; transformers exposes only the softmax
probabilities, so those are matched here (the choice of MobileBERT, Sun et al.
2020). When head counts differ, the teacher's heads are averaged in groups.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeslim.core.errors import EdgeslimError
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


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """TinyBERT's ``g(m) = m * N / M`` for ``m = 0..M`` (0 = embeddings, m = layer m's output).

    Example:
        >>> uniform_layer_map(2, 4)
        [(0, 0), (1, 2), (2, 4)]
    """
    if teacher_layers % student_layers:
        raise EdgeslimError(
            f"uniform mapping needs the teacher's {teacher_layers} layers to be a multiple "
            f"of the student's {student_layers}"
        )
    step = teacher_layers // student_layers
    return [(m, m * step) for m in range(student_layers + 1)]


def attention_mse(student_attn: torch.Tensor, teacher_attn: torch.Tensor) -> torch.Tensor:
    """MSE of (batch, heads, T, T) attention maps; teacher heads grouped to the student's count.

    Example:
        >>> a = torch.softmax(torch.randn(2, 4, 5, 5), -1)
        >>> float(attention_mse(a, a))
        0.0
    """
    hs, ht = student_attn.shape[1], teacher_attn.shape[1]
    if ht != hs:
        if ht % hs:
            raise EdgeslimError(f"cannot group {ht} teacher heads into {hs} student heads")
        teacher_attn = teacher_attn.unflatten(1, (hs, ht // hs)).mean(2)
    return F.mse_loss(student_attn.float(), teacher_attn.float())


def projected_mse(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, projection: nn.Module
) -> torch.Tensor:
    """``MSE(H_s W, H_t)``: TinyBERT's embedding-layer and hidden-state loss of one pair.

    Example:
        >>> h = torch.randn(2, 5, 8)
        >>> float(projected_mse(h, h, nn.Identity()))
        0.0
    """
    return F.mse_loss(projection(student_hidden).float(), teacher_hidden.float())


def is_attention_layer(name: str) -> bool:
    return "#" in name


@LOSSES.register("tinybert")
class TinyBERTLoss(DistillLoss):
    """Hidden-state MSE through learned ``W_h`` plus attention-map MSE, over mapped layers."""

    needs_layers = True
    #: the default (uniform) layer mapping includes the attention maps
    wants_attention = True
    default_beta = 1.0

    def __init__(self, layers: Sequence[LayerPair], adapters: Sequence[nn.Module], beta: float):
        super().__init__()
        self.student_layers, self.teacher_layers = split_layers(layers)
        self.adapters = nn.ModuleList(adapters)
        self.beta = beta

    @classmethod
    def build(cls, spec: LossSpec, probe: Probe) -> TinyBERTLoss:
        s, t = probe.student.features, probe.teachers[0].features
        adapters = [
            nn.Identity()
            if is_attention_layer(a)
            else make_adapter(tuple(s[a].shape), tuple(t[b].shape))
            for a, b in spec.layers
        ]
        return cls(spec.layers, adapters, cls.default_beta if spec.beta is None else spec.beta)

    def forward(self, student: Outputs, teachers: Sequence[Outputs], y: torch.Tensor):
        t = teachers[0].features
        total = student.logits.new_zeros((), dtype=torch.float32)
        for adapter, a, b in zip(
            self.adapters, self.student_layers, self.teacher_layers, strict=True
        ):
            if is_attention_layer(a):
                total = total + attention_mse(student.features[a], t[b])
            else:
                total = total + projected_mse(student.features[a], t[b], adapter)
        return self.beta * total
