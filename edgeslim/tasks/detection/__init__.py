"""``detection``: boxes and classes per image, scored by COCO mAP.

Models return raw head maps, YOLOv5-style (:mod:`.yolo`) or RetinaNet-style
(:mod:`.retina`); the task's ``outputs`` tells them apart by their layout
(:mod:`.heads`) and decodes either into rows ``(N, K, 5 + C + 5)`` (boxes in input pixels,
objectness and class logits, then the anchor and cell each row comes from). Targets
are ``(N, M, 5)`` rows ``[class, x1, y1, x2, y2]`` in pixels, padded with class -1
(:mod:`edgeslim.data.detection`). The loss is YOLOv5's (CIoU box, objectness and class
BCE with ratio-based anchor assignment) or RetinaNet's (focal loss and smooth-L1 with
IoU-based anchor assignment), whichever family made the rows; metrics are COCO mAP@0.5 (primary, the
number the driving sources quote) and mAP@0.5:0.95 (:mod:`.coco_map`); decoding is
confidence filtering plus class-aware NMS (:mod:`.boxes`).

Parity: an exact twin (an ONNX export, a pruned model against its masked dense model)
must match every decoded row within 0.01 px / logit; a lossy twin (INT8) must keep the
confident rows: among rows either model scores at least 0.25, the share both do, with
the same class. Distillation mixes the YOLO loss with the teacher's objectness and
class probabilities as soft targets, weighted by the teacher's objectness; for
RetinaNet (no objectness) by the teacher's best class probability.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import default_collate

from edgeslim.core.errors import EdgeslimError
from edgeslim.tasks.base import MetricSpec, Task, register_task
from edgeslim.tasks.batch import Inputs, batch_len
from edgeslim.tasks.compare import ParitySpec
from edgeslim.tasks.detection.boxes import batched_nms, box_iou, ciou, nms
from edgeslim.tasks.detection.coco_map import MeanAP, coco_stats, postprocess
from edgeslim.tasks.detection.detect import Detect, NMSConfig
from edgeslim.tasks.detection.heads import decode_outputs, detection_loss
from edgeslim.tasks.detection.retina import decode_retina, is_retina_rows, retina_loss
from edgeslim.tasks.detection.yolo import (
    ANCHORS,
    META,
    NOMINAL_BATCH,
    decode_heads,
    num_classes_of,
    yolo_loss,
)

CONFIDENT = 0.25  # score above which a row counts as a detection for lossy parity


def collate_boxes(samples: list) -> tuple[Tensor, Tensor]:
    """Stack ``(image, (M, 5) targets)`` samples; drop target columns that are padding in all."""
    x, t = default_collate(samples)
    real = (t[..., 0] >= 0).sum(1)
    keep = max(int(real.max()) if len(real) else 0, 1)
    return x, t[:, :keep]


def check_rows(outputs: Tensor, inputs: Inputs, num_classes: int | None) -> None:
    """Decoded outputs must be ``(batch, rows, 10 + classes)``."""
    n = batch_len(inputs)
    if not torch.is_tensor(outputs) or outputs.dim() != 3 or outputs.shape[0] != n:
        shape = tuple(outputs.shape) if torch.is_tensor(outputs) else type(outputs).__name__
        raise EdgeslimError(f"detector rows {shape} are not (batch, rows, 10 + classes) for {n}")
    c = num_classes_of(outputs)
    if c < 1 or (num_classes is not None and c != num_classes):
        raise EdgeslimError(f"the detector predicts {c} classes but the data has {num_classes}")


def confident_agreement(a: Tensor, b: Tensor) -> tuple[int, int]:
    """Rows where either model is confident: how many both are, with the same class."""
    c = num_classes_of(a)

    def scored(r: Tensor) -> tuple[Tensor, Tensor]:
        p = r[..., 5 : 5 + c].float().sigmoid() * r[..., 4:5].float().sigmoid()
        s, k = p.max(-1)
        return s >= CONFIDENT, k

    ca, ka = scored(a.detach())
    cb, kb = scored(b.detach())
    either = ca | cb
    return int((ca & cb & (ka == kb)).sum()), int(either.sum())


def detection_kd(
    student: Tensor, teacher: Tensor, targets: Tensor, temperature: float = 1.0, alpha: float = 0.5
) -> Tensor:
    """``(1 - alpha) * detection loss + alpha * soft loss`` against the teacher's rows.

    The soft loss is BCE of the student's objectness against the teacher's (at
    ``temperature``), plus class BCE and a stride-normalised L1 on the boxes, both
    weighted by the teacher's objectness so that background rows do not dominate.
    RetinaNet rows have no objectness: the BCE of every row's class probabilities
    takes its place, and the teacher's best class probability weights the rest. For
    YOLO rows the soft loss is scaled like the hard one (:data:`NOMINAL_BATCH`), so
    ``alpha`` weighs two terms of one scale.
    """
    s, t = student.float(), teacher.detach().float()
    c = num_classes_of(s)
    if is_retina_rows(t):
        cls_t = torch.sigmoid(t[..., 5 : 5 + c] / temperature)
        obj_t = cls_t.amax(-1)
        s_cls = s[..., 5 : 5 + c] / temperature
        soft = F.binary_cross_entropy_with_logits(s_cls, cls_t) * temperature**2
    else:
        obj_t = torch.sigmoid(t[..., 4] / temperature)
        soft = F.binary_cross_entropy_with_logits(s[..., 4] / temperature, obj_t) * temperature**2
    w = obj_t / obj_t.sum().clamp(min=1e-6)
    cls = F.binary_cross_entropy_with_logits(
        s[..., 5 : 5 + c], torch.sigmoid(t[..., 5 : 5 + c]), reduction="none"
    ).mean(-1)
    box = ((s[..., :4] - t[..., :4]).abs().sum(-1) / t[..., -3]).clamp(max=10)
    soft = soft + (w * (cls + box)).sum()
    if not is_retina_rows(t):
        soft = soft * NOMINAL_BATCH
    hard = detection_loss(s, targets) if alpha < 1 else s.new_zeros(())
    return (1 - alpha) * hard + alpha * soft


DETECTION = register_task(
    Task(
        name="detection",
        loss=detection_loss,
        metrics=(
            MetricSpec("map50", "mAP@0.5", higher_is_better=True, make=lambda: MeanAP("50")),
            MetricSpec("map", "mAP@0.5:0.95", higher_is_better=True, make=lambda: MeanAP("50:95")),
        ),
        primary="map50",
        decode=lambda rows: postprocess(rows),
        parity=ParitySpec("confident_agreement", confident_agreement, atol=1e-2, min_agreement=0.9),
        distill=detection_kd,
        check_output=check_rows,
        collate=collate_boxes,
        outputs=decode_outputs,
        description="boxes per image (YOLO or RetinaNet heads); the family's loss, COCO mAP",
        train_defaults={"lr": 0.01, "batch_size": 16, "momentum": 0.937},  # YOLOv5's
    )
)

__all__ = [
    "ANCHORS",
    "DETECTION",
    "Detect",
    "META",
    "MeanAP",
    "NMSConfig",
    "batched_nms",
    "box_iou",
    "ciou",
    "coco_stats",
    "collate_boxes",
    "decode_heads",
    "decode_outputs",
    "decode_retina",
    "detection_loss",
    "detection_kd",
    "nms",
    "postprocess",
    "retina_loss",
    "yolo_loss",
]
