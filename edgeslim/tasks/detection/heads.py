"""Which detector family made an output: the task decodes and scores both alike.

A detector's raw output says which family it is by its layout: YOLO returns one map
per stride with ``A * (5 + C)`` channels (:mod:`.yolo`), RetinaNet returns ``L`` class
maps then ``L`` box maps of ``9 * 4`` channels (:mod:`.retina`). The layout, not a
model attribute, decides, because ONNX Runtime's outputs are bare tensors too. Both
decode to the same rows; the rows then say which loss applies (RetinaNet rows carry
the constant objectness :data:`.retina.OBJ_LOGIT`), so the trainer, distillation, mAP,
parity and the exported NMS never ask.
"""

from __future__ import annotations

from torch import Tensor

from edgeslim.tasks.detection.retina import decode_retina, is_retina_maps, is_retina_rows
from edgeslim.tasks.detection.retina import retina_loss as _retina_loss
from edgeslim.tasks.detection.yolo import decode_heads, head_maps, yolo_loss


def decode_outputs(raw: object) -> Tensor:
    """A detector's raw maps (YOLO or RetinaNet) -> rows ``(N, K, 5 + C + 5)``.

    Example:
        >>> import torch
        >>> yolo = [torch.zeros(1, 21, 8 // s, 8 // s) for s in (1, 2, 4)]
        >>> retina = [torch.zeros(1, 18, 8, 8), torch.zeros(1, 36, 8, 8)]
        >>> tuple(decode_outputs(yolo).shape), tuple(decode_outputs(retina).shape)
        ((1, 252, 12), (1, 576, 12))
    """
    maps = head_maps(raw)
    return decode_retina(maps) if is_retina_maps(maps) else decode_heads(maps)


def detection_loss(rows: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """The loss of the family that made ``rows``: RetinaNet's focal loss or YOLOv5's."""
    if is_retina_rows(rows):
        return _retina_loss(rows, targets, label_smoothing)
    return yolo_loss(rows, targets, label_smoothing)
