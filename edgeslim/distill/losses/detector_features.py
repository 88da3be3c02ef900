"""Detector distillation: the teacher's neck features imitated near the objects.

Wang, Yuan, Zhang, Feng, "Distilling Object Detectors with Fine-grained Feature
Imitation", CVPR 2019: a detector's knowledge sits in the features around its
objects, and imitating the whole map drowns them in background. For every mapped
neck level a learned 1x1 adapter maps the student map to the teacher's channels,
and the squared difference is counted only where the imitation mask ``I`` is on::

    L_imitation = 1 / (2 N_p) * sum_levels sum_(i, j) I_ij sum_c (adapt(s)_ijc - t_ijc)^2

with ``N_p`` the number of masked locations. The paper's mask takes the anchor
locations whose IoU with a ground-truth box exceeds ``psi`` times that box's best
IoU; here a location is masked when its cell centre lies in a ground-truth box grown
by one cell (``margin``) on each side: the same near-object region without anchor
IoUs, so it serves YOLO's and RetinaNet's heads alike. Boxes come from the batch's
targets (``[class, x1, y1, x2, y2]`` in input pixels, padding class -1).

Combine it with the detection task's logit distillation, ``--loss kd+det_feature``
(objectness and class probabilities of the teacher as soft targets, weighted by
the teacher's objectness). The default levels are the neck outputs the heads read:
YOLOv5's ``td3``, ``pan4``, ``pan5`` and RetinaNet's FPN ``out3``..``out5``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
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

NECKS = (("td3", "pan4", "pan5"), ("fpn.out3", "fpn.out4", "fpn.out5"))


def object_mask(
    targets: torch.Tensor, h: int, w: int, image_hw: tuple[int, int], margin: float = 1.0
) -> torch.Tensor:
    """``(N, h, w)`` 1 where a cell centre lies in a target box grown by ``margin`` cells.

    Example:
        >>> t = torch.tensor([[[0.0, 0, 0, 16, 16], [-1, 0, 0, 0, 0]]])
        >>> object_mask(t, 4, 4, (32, 32), margin=0).int().tolist()
        [[[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]]
    """
    big_h, big_w = image_hw
    sy, sx = big_h / h, big_w / w
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) * sy
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) * sx
    t = targets.float()
    valid = t[..., 0] >= 0  # (N, M)
    x1 = (t[..., 1] - margin * sx)[..., None, None]
    y1 = (t[..., 2] - margin * sy)[..., None, None]
    x2 = (t[..., 3] + margin * sx)[..., None, None]
    y2 = (t[..., 4] + margin * sy)[..., None, None]
    inside = (xs >= x1) & (xs <= x2) & (ys[:, None] >= y1) & (ys[:, None] <= y2)  # N,M,h,w
    return (inside & valid[..., None, None]).any(1).float()


def imitation_loss(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of I * sum_c (s - t)^2, N_p)`` for one level (``student`` already adapted)."""
    if student.shape != teacher.shape:
        raise EdgeslimError(
            f"student and teacher maps differ after the adapter: {tuple(student.shape)} "
            f"vs {tuple(teacher.shape)}"
        )
    per_cell = (student.float() - teacher.float()).pow(2).sum(1)  # N, h, w
    return (per_cell * mask).sum(), mask.sum()


@LOSSES.register("det_feature")
class DetectorFeatureImitation(DistillLoss):
    """``beta * L_imitation`` over the mapped neck levels (see the module docstring)."""

    needs_layers = True
    default_beta = 0.01  # the paper's lambda

    def __init__(
        self,
        layers: Sequence[LayerPair],
        adapters: Sequence[nn.Module],
        beta: float,
        image_hw: tuple[int, int],
        margin: float = 1.0,
    ) -> None:
        super().__init__()
        self.student_layers, self.teacher_layers = split_layers(layers)
        self.adapters = nn.ModuleList(adapters)
        self.beta, self.image_hw, self.margin = beta, image_hw, margin

    @property
    def reads_labels(self) -> bool:
        return True  # the ground-truth boxes place the mask

    @classmethod
    def default_layers(cls, student: nn.Module, teacher: nn.Module | None):
        names = {n for n, _ in student.named_modules()}
        other = {n for n, _ in teacher.named_modules()} if teacher is not None else names
        for neck in NECKS:
            if set(neck) <= names and set(neck) <= other:
                return tuple((n, n) for n in neck)
        return None

    @classmethod
    def build(cls, spec: LossSpec, probe: Probe) -> DetectorFeatureImitation:
        if len(probe.input_shape) != 4:
            raise EdgeslimError("det_feature needs image inputs (N, C, H, W)")
        s, t = probe.student.features, probe.teachers[0].features
        adapters = [make_adapter(tuple(s[a].shape), tuple(t[b].shape)) for a, b in spec.layers]
        beta = cls.default_beta if spec.beta is None else spec.beta
        return cls(spec.layers, adapters, beta, tuple(probe.input_shape[-2:]))

    def forward(self, student: Outputs, teachers: Sequence[Outputs], y: torch.Tensor):
        t = teachers[0].features
        total, count = 0.0, 0.0
        for adapter, a, b in zip(self.adapters, self.student_layers, self.teacher_layers,
                                 strict=True):  # fmt: skip
            fs = adapter(student.features[a])
            mask = object_mask(y, fs.shape[-2], fs.shape[-1], self.image_hw, self.margin)
            s, n = imitation_loss(fs, t[b], mask.to(fs.device))
            total, count = total + s, count + n
        return self.beta * total / (2 * max(float(count), 1.0))
