"""``segmentation``: one class per pixel, scored by mean IoU.

Models map ``(N, 3, H, W)`` images to ``(N, C, H, W)`` logits; targets are
``(N, H, W)`` class ids, where ``255`` (or any id outside ``[0, C)``) marks an
unlabelled pixel that neither the loss nor the metrics count. The loss is per-pixel
cross-entropy; metrics are mean IoU (primary) and pixel accuracy, both from one
confusion matrix per metric (Long, Shelhamer, Darrell, "Fully Convolutional
Networks for Semantic Segmentation", CVPR 2015, section 5). Parity compares
per-pixel argmax agreement; distillation is Hinton KD at every pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeslim.core.errors import EdgeslimError
from edgeslim.tasks.base import MetricSpec, Task, register_task
from edgeslim.tasks.batch import Inputs, batch_len
from edgeslim.tasks.classification import argmax_classes
from edgeslim.tasks.compare import ParitySpec, kd_with
from edgeslim.tasks.metrics import IGNORE_INDEX, MeanIoU, PixelAccuracy


def pixel_cross_entropy(
    outputs: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy over labelled pixels of ``(N, C, H, W)`` logits."""
    return F.cross_entropy(
        outputs, targets.long(), ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing
    )


def check_masks(outputs: torch.Tensor, inputs: Inputs, num_classes: int | None) -> None:
    """Outputs must be ``(batch, classes, H, W)`` at the input's resolution."""
    n = batch_len(inputs)
    if outputs.dim() != 4 or outputs.shape[0] != n:
        raise EdgeslimError(
            f"model output shape {tuple(outputs.shape)} is not (batch, classes, H, W) "
            f"for a batch of {n}"
        )
    if num_classes is not None and outputs.shape[1] != num_classes:
        raise EdgeslimError(
            f"model outputs {outputs.shape[1]} classes but the data has {num_classes}"
        )
    if torch.is_tensor(inputs) and inputs.dim() == 4 and outputs.shape[2:] != inputs.shape[2:]:
        raise EdgeslimError(
            f"model output resolution {tuple(outputs.shape[2:])} differs from the input's "
            f"{tuple(inputs.shape[2:])}"
        )


SEGMENTATION = register_task(
    Task(
        name="segmentation",
        loss=pixel_cross_entropy,
        metrics=(
            MetricSpec("miou", "mIoU", higher_is_better=True, make=MeanIoU),
            MetricSpec("pixel_acc", "pixel acc", higher_is_better=True, make=PixelAccuracy),
        ),
        primary="miou",
        decode=argmax_classes,
        parity=ParitySpec("pixel_agreement", atol=1e-3, min_agreement=0.99),
        distill=kd_with(pixel_cross_entropy),
        check_output=check_masks,
        description="one class per pixel; per-pixel cross-entropy, mIoU",
    )
)
