"""``Detect``: a detector plus box decoding and class-aware NMS, as one module.

Wraps a model that returns raw head maps (YOLOv5 or RetinaNet, :mod:`.heads`) so that it
returns detections instead: ``boxes (K, 4)`` xyxy in input pixels, ``scores (K,)``,
``classes (K,)`` and ``batch_index (K,)`` (which image each row belongs to), rows of
one image best first. Scores and filtering are :func:`.coco_map.postprocess`'s
(YOLOv5's validation): score = objectness x class probability, the best class per
row, the ``max_candidates`` best rows, rows scoring ``<= conf`` dropped, class-aware
greedy NMS at IoU ``iou``, at most ``max_det`` per image.

The module splits in two so that it can be exported (:mod:`edgeslim.export.detector`):
:meth:`Detect.candidates` is plain tensor code (decode, score, top-k, the per-class
box offset) that torch.onnx exports; the NMS itself becomes one ONNX
``NonMaxSuppression`` node over the offset boxes, added to the exported graph.
Eager :meth:`Detect.forward` runs the task's own NMS (:func:`.boxes.batched_nms`), so
eager against ONNX Runtime is a check of the exported graph against the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.tasks.detection.boxes import class_offsets, cxcywh_to_xyxy
from edgeslim.tasks.detection.coco_map import postprocess
from edgeslim.tasks.detection.heads import decode_outputs
from edgeslim.tasks.detection.yolo import num_classes_of


@dataclass(frozen=True)
class NMSConfig:
    """Thresholds of the post-processing (YOLOv5's ``detect.py`` defaults)."""

    conf: float = 0.25  # rows scoring at most this are dropped (objectness x class prob)
    iou: float = 0.45  # a box overlapping a better one of its class by more is dropped
    max_det: int = 100  # detections kept per image
    max_candidates: int = 1000  # best rows per image that enter NMS

    def __post_init__(self) -> None:
        if not 0.0 <= self.iou <= 1.0:
            raise EdgeslimError(f"NMS iou threshold {self.iou} is not in [0, 1]")
        if self.max_det < 1 or self.max_candidates < 1:
            raise EdgeslimError("max_det and max_candidates must be at least 1")


class Detect(nn.Module):
    """``model`` followed by decoding and class-aware NMS.

    Example:
        >>> head = lambda x: [x.new_zeros(len(x), 21, 8 // s, 8 // s) for s in (1, 2, 4)]
        >>> class Raw(nn.Module):
        ...     def forward(self, x): return head(x)
        >>> det = Detect(Raw(), NMSConfig(conf=0.2))
        >>> boxes, scores, classes, index = det(torch.zeros(1, 3, 64, 64))
        >>> boxes.shape[1], float(scores[0])  # sigmoid(0) * sigmoid(0)
        (4, 0.25)
    """

    def __init__(self, model: nn.Module, config: NMSConfig | None = None) -> None:
        super().__init__()
        self.model = model
        self.config = config or NMSConfig()

    def candidates(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """What enters NMS, per image: the ``max_candidates`` best rows.

        Returns ``(nms_boxes (N, k, 4), nms_scores (N, 1, k), boxes (N, k, 4),
        scores (N, k), classes (N, k) int64)``; ``nms_boxes`` are ``boxes`` shifted by
        :func:`.boxes.class_offsets`, so one single-class NMS is class-aware.
        """
        return self.candidates_from(self.model(x))

    def candidates_from(self, raw: object) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """:meth:`candidates` of the model's raw head maps ``raw`` (already computed)."""
        rows = decode_outputs(raw)
        c = num_classes_of(rows)
        probs = rows[..., 5 : 5 + c].sigmoid() * rows[..., 4:5].sigmoid()
        scores, classes = probs.max(-1)
        k = min(self.config.max_candidates, rows.shape[1])
        scores, top = scores.topk(k, dim=1)
        classes = classes.gather(1, top)
        boxes = cxcywh_to_xyxy(rows[..., :4]).gather(1, top[..., None].expand(-1, -1, 4))
        shifted = boxes + class_offsets(boxes, classes)
        return shifted, scores[:, None], boxes, scores, classes

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(boxes (K, 4), scores (K,), classes (K,) int64, batch_index (K,) int64)``."""
        cfg = self.config
        dets = postprocess(
            decode_outputs(self.model(x)), cfg.conf, cfg.iou, cfg.max_det, cfg.max_candidates
        )
        index = torch.cat(
            [
                torch.full((len(d),), i, dtype=torch.long, device=x.device)
                for i, d in enumerate(dets)
            ]
        )
        d = torch.cat(dets)
        return d[:, :4], d[:, 4], d[:, 5].long(), index


class Candidates(nn.Module):
    """The exportable half of a :class:`Detect`: its :meth:`Detect.candidates`."""

    def __init__(self, detect: Detect) -> None:
        super().__init__()
        self.detect = detect

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return self.detect.candidates(x)


class RawCandidates(nn.Module):
    """:meth:`Detect.candidates_from` as a module of the raw head maps (one input per map):
    the post-processing alone, to append to an already deployed raw-head graph."""

    def __init__(self, config: NMSConfig | None = None) -> None:
        super().__init__()
        self.detect = Detect(nn.Identity(), config)

    def forward(self, *maps: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return self.detect.candidates_from(list(maps))
