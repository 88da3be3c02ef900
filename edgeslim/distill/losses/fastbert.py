"""FastBERT's self-distillation: a branch classifier per layer learns the final classifier.

Liu, Zhou, Wang, Zhao, Deng, Ju, "FastBERT: a Self-distilling BERT with Adaptive
Inference Time", ACL 2020. After the backbone and its final ("teacher")
classifier are fine-tuned, the backbone is frozen and a small "student"
classifier on every layer but the last learns the teacher's soft predictions
from unlabelled data::

    L = sum_i KL(p_t || p_i),   p = softmax(z / T)   (the paper: T = 1)

No label enters the loss. The ``fastbert`` branches are the heads of
:mod:`edgeslim.distill.losses.self_distill` (a bottleneck on the [CLS] token and a
linear classifier); the ``fastbert-attn`` branches are the paper's own student
classifier (:class:`~edgeslim.distill.losses.attention_branch.AttentionBranch`: a
2-head self-attention over every token, read at [CLS]). The trained loss serves eager early exit
(:func:`edgeslim.distill.early_exit.early_exit`) and the segmented ONNX export
(:mod:`edgeslim.distill.fastbert`) unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.distill.hooks import Outputs
from edgeslim.distill.losses.attention_branch import AttentionBranch
from edgeslim.distill.losses.base import LOSSES, DistillLoss, LayerPair, LossSpec, Probe
from edgeslim.distill.losses.kd import soft_kl
from edgeslim.distill.losses.self_distill import AuxHead, pooled


def branch_kl(
    branch_logits: Sequence[torch.Tensor], final_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """``sum_i T^2 KL(softmax(z_final / T) || softmax(z_i / T))``, the final logits detached.

    Example:
        >>> z = torch.randn(4, 3)
        >>> float(branch_kl([z, z], z)) < 1e-6
        True
    """
    target = torch.softmax(final_logits.detach().float() / temperature, dim=1)
    return sum(soft_kl(z, target, temperature) for z in branch_logits)


@LOSSES.register("fastbert")
class FastBERTDistillation(DistillLoss):
    """One branch on each of ``layers[:-1]``; ``layers[-1]`` feeds the model's own classifier.

    Freeze the backbone (``requires_grad_(False)``) before training, as the paper does:
    the loss has no label term, so only the branches should learn from it.
    """

    includes_hard_labels = True  # label-free on purpose: the Distiller must add no CE
    needs_teacher = False
    needs_layers = True

    def __init__(
        self, blocks: Sequence[str], heads: Sequence[AuxHead | AttentionBranch], temperature: float
    ) -> None:
        super().__init__()
        if len(blocks) != len(heads) + 1:
            raise EdgeslimError("FastBERT needs one branch per layer but the last")
        self.student_layers = tuple(blocks)
        self.heads = nn.ModuleList(heads)
        self.temperature = temperature

    @classmethod
    def default_layers(cls, student: nn.Module, teacher: nn.Module | None) -> tuple[LayerPair, ...]:
        """Every encoder layer of a transformers model (FastBERT puts a branch on each)."""
        from edgeslim.distill.layers import transformer_layers

        found = transformer_layers(student)
        if found is None:
            raise EdgeslimError("FastBERT needs a transformers encoder (an hf: model)")
        return tuple((name, name) for name in found[1])

    @classmethod
    def build(cls, spec: LossSpec, probe: Probe) -> FastBERTDistillation:
        blocks = [s for s, _ in spec.layers]
        if len(blocks) < 2:
            raise EdgeslimError("FastBERT needs at least 2 layers: shallow..., last")
        feats = probe.student.features
        classes = probe.student.logits.shape[1]
        heads = [cls.branch(feats[b], classes) for b in blocks[:-1]]
        return cls(blocks, heads, spec.temperature)

    @staticmethod
    def branch(feat: torch.Tensor, classes: int) -> nn.Module:
        """The branch for a layer whose output looks like ``feat``."""
        return AuxHead(tuple(feat.shape), pooled(feat).shape[1], classes)

    def branch_logits(self, features: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Every branch's logits, shallow to deep."""
        return [h(features[b])[1] for h, b in zip(self.heads, self.student_layers, strict=False)]

    def forward(self, student: Outputs, teachers: Sequence[Outputs], y: torch.Tensor):
        return branch_kl(self.branch_logits(student.features), student.logits, self.temperature)


@LOSSES.register("fastbert-attn")
class FastBERTAttentionDistillation(FastBERTDistillation):
    """:class:`FastBERTDistillation` with the paper's branch: attention over every token."""

    @staticmethod
    def branch(feat: torch.Tensor, classes: int) -> nn.Module:
        if feat.dim() != 3:
            raise EdgeslimError(f"fastbert-attn branches read (N, T, C) tokens, got {feat.shape}")
        return AttentionBranch(feat.shape[-1], classes)
