"""Self-distillation: auxiliary classifiers on intermediate blocks learn from the deepest.

Zhang, Song, Gao, Chen, Bao, Ma, "Be Your Own Teacher: Improve the Performance of
Convolutional Neural Networks via Self Distillation", ICCV 2019. Each shallow
block ``i`` gets a head (a 1x1 bottleneck to the deepest block's width, global
pooling and a linear classifier; for token features, the first token). With
``q_C`` the network's own output and ``F_C`` its pooled deepest feature::

    L = CE(q_C, y) + sum_i [(1 - alpha) CE(q_i, y) + alpha T^2 KL(q_C^T || q_i^T)]
                   + beta * sum_i mean((F_i - F_C)^2)

The deepest outputs are detached in the soft and hint terms: the shallow heads
learn from the deepest one, not the other way round. No external teacher is
needed. The trained heads serve early-exit inference
(:mod:`edgeslim.distill.early_exit`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.distill.hooks import Outputs
from edgeslim.distill.losses.base import LOSSES, DistillLoss, LossSpec, Probe
from edgeslim.distill.losses.kd import soft_kl


def pooled(feat: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> global average (N, C); (N, T, C) -> first token (N, C); (N, C) as is."""
    if feat.dim() == 4:
        return feat.mean((2, 3))
    if feat.dim() == 3:
        return feat[:, 0]
    return feat


class AuxHead(nn.Module):
    """Bottleneck to the deepest width, pooled, then a classifier: ``f -> (F_i, logits_i)``."""

    def __init__(self, in_shape: tuple[int, ...], deep_dim: int, num_classes: int) -> None:
        super().__init__()
        if len(in_shape) == 4:
            self.bottleneck: nn.Module = nn.Sequential(
                nn.Conv2d(in_shape[1], deep_dim, 1, bias=False),
                nn.BatchNorm2d(deep_dim),
                nn.ReLU(),
            )
        else:
            self.bottleneck = nn.Sequential(nn.Linear(in_shape[-1], deep_dim), nn.ReLU())
        self.fc = nn.Linear(deep_dim, num_classes)

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if feat.dim() == 4:
            f = pooled(self.bottleneck(feat))
        else:
            f = self.bottleneck(pooled(feat))
        return f, self.fc(f)


def self_distill_loss(
    aux: Sequence[tuple[torch.Tensor, torch.Tensor]],
    deep_feat: torch.Tensor,
    logits: torch.Tensor,
    y: torch.Tensor,
    temperature: float,
    alpha: float,
    beta: float,
) -> torch.Tensor:
    """The loss above from ``aux = [(F_i, q_i)]``, ``F_C = deep_feat`` and ``q_C = logits``."""
    target = torch.softmax(logits.detach().float() / temperature, dim=1)
    total = F.cross_entropy(logits, y)
    for feat, z in aux:
        total = total + (1 - alpha) * F.cross_entropy(z, y)
        total = total + alpha * soft_kl(z, target, temperature)
        total = total + beta * F.mse_loss(feat.float(), deep_feat.detach().float())
    return total


@LOSSES.register("self")
class SelfDistillation(DistillLoss):
    """Auxiliary heads on ``layers[:-1]`` distilled from the network itself; ``layers[-1]`` is
    the deepest block."""

    includes_hard_labels = True
    needs_teacher = False
    needs_layers = True
    default_beta = 0.03

    def __init__(
        self,
        blocks: Sequence[str],
        heads: Sequence[AuxHead],
        temperature: float,
        alpha: float,
        beta: float,
    ) -> None:
        super().__init__()
        if len(blocks) != len(heads) + 1:
            raise EdgeslimError("self-distillation needs one head per block but the deepest")
        self.student_layers = tuple(blocks)
        self.heads = nn.ModuleList(heads)
        self.temperature, self.alpha, self.beta = temperature, alpha, beta

    @classmethod
    def build(cls, spec: LossSpec, probe: Probe) -> SelfDistillation:
        blocks = [s for s, _ in spec.layers]
        if len(blocks) < 2:
            raise EdgeslimError("self-distillation needs at least 2 blocks: shallow..., deepest")
        feats = probe.student.features
        deep_dim = pooled(feats[blocks[-1]]).shape[1]
        classes = probe.student.logits.shape[1]
        heads = [AuxHead(tuple(feats[b].shape), deep_dim, classes) for b in blocks[:-1]]
        beta = cls.default_beta if spec.beta is None else spec.beta
        return cls(blocks, heads, spec.temperature, spec.alpha, beta)

    def head_outputs(self, features: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, ...]]:
        """``[(F_i, logits_i)]`` of every auxiliary head, shallow to deep."""
        return [h(features[b]) for h, b in zip(self.heads, self.student_layers, strict=False)]

    def forward(self, student: Outputs, teachers: Sequence[Outputs], y: torch.Tensor):
        aux = self.head_outputs(student.features)
        deep = pooled(student.features[self.student_layers[-1]])
        return self_distill_loss(
            aux, deep, student.logits, y, self.temperature, self.alpha, self.beta
        )
