"""Box geometry for detection: conversions, pairwise IoU, CIoU and class-aware NMS.

Boxes are ``(..., 4)`` tensors, ``xyxy`` (corners) or ``cxcywh`` (centre and size), in
pixels. CIoU is from Zheng et al., "Distance-IoU Loss: Faster and Better Learning for
Bounding Box Regression", AAAI 2020 (arXiv:1911.08287), eq. 9-11::

    CIoU = IoU - rho^2(b, b_gt) / c^2 - alpha * v
    v = 4 / pi^2 * (atan(w_gt / h_gt) - atan(w / h))^2,   alpha = v / (1 - IoU + v)

with ``rho`` the centre distance and ``c`` the diagonal of the smallest enclosing box;
``alpha`` carries no gradient, as in the paper's implementation.

NMS is greedy (Neubeck and Van Gool, "Efficient Non-Maximum Suppression", ICPR 2006),
written here because torchvision is not a dependency. Like torchvision's CPU kernel it
sweeps the boxes in score order on the CPU, keeps the best box left and drops every
later box that overlaps it by more than ``t``; the IoU of a kept box against the rest is
one vectorised step, and the sweep stops after ``max_keep`` boxes, so it costs
``O(kept * n)``, not the ``O(n^2)`` of a full IoU matrix.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

EPS = 1e-7


def cxcywh_to_xyxy(b: Tensor) -> Tensor:
    """Centre and size -> corners."""
    c, s = b[..., :2], b[..., 2:4] / 2
    return torch.cat((c - s, c + s), -1)


def xyxy_to_cxcywh(b: Tensor) -> Tensor:
    """Corners -> centre and size."""
    return torch.cat(((b[..., :2] + b[..., 2:4]) / 2, b[..., 2:4] - b[..., :2]), -1)


def box_area(b: Tensor) -> Tensor:
    """Area of ``xyxy`` boxes (0 for inverted ones)."""
    return (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU of ``xyxy`` boxes: ``(n, 4), (m, 4) -> (n, m)``.

    Example:
        >>> box_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 0, 3, 2]]))
        tensor([[0.3333]])
    """
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / (box_area(a)[:, None] + box_area(b)[None, :] - inter + EPS)


def ciou(pred: Tensor, target: Tensor) -> Tensor:
    """Elementwise complete IoU of ``cxcywh`` boxes (the module docstring has the math).

    Example:
        >>> b = torch.tensor([[5.0, 5.0, 4.0, 2.0]])
        >>> float(ciou(b, b))
        1.0
    """
    p, t = cxcywh_to_xyxy(pred), cxcywh_to_xyxy(target)
    inter = torch.minimum(p[..., 2:4], t[..., 2:4]) - torch.maximum(p[..., :2], t[..., :2])
    inter = inter.clamp(min=0).prod(-1)
    union = box_area(p) + box_area(t) - inter + EPS
    iou = inter / union
    enclose = torch.maximum(p[..., 2:4], t[..., 2:4]) - torch.minimum(p[..., :2], t[..., :2])
    c2 = enclose.pow(2).sum(-1) + EPS
    rho2 = (pred[..., :2] - target[..., :2]).pow(2).sum(-1)
    w1, h1 = pred[..., 2], pred[..., 3] + EPS
    w2, h2 = target[..., 2], target[..., 3] + EPS
    v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + EPS))
    return iou - (rho2 / c2 + v * alpha)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, max_keep: int | None = None) -> Tensor:
    """Greedy NMS: indices of the kept ``xyxy`` boxes, highest score first.

    Example:
        >>> b = torch.tensor([[0.0, 0, 10, 10], [1.0, 1, 10, 10], [20.0, 20, 30, 30]])
        >>> nms(b, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist()
        [0, 2]
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True, stable=True)
    b = boxes[order].detach().float().cpu().numpy()
    area = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    removed = np.zeros(len(b), dtype=bool)
    keep: list[int] = []
    limit = len(b) if max_keep is None else max_keep
    for i in range(len(b)):
        if removed[i]:
            continue
        keep.append(i)
        if len(keep) >= limit:
            break
        rest = b[i + 1 :]
        iw = (np.minimum(b[i, 2], rest[:, 2]) - np.maximum(b[i, 0], rest[:, 0])).clip(0)
        ih = (np.minimum(b[i, 3], rest[:, 3]) - np.maximum(b[i, 1], rest[:, 1])).clip(0)
        inter = iw * ih
        iou = inter / (area[i] + area[i + 1 :] - inter + EPS)
        removed[i + 1 :] |= iou > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(
    boxes: Tensor,
    scores: Tensor,
    classes: Tensor,
    iou_threshold: float,
    max_keep: int | None = None,
) -> Tensor:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Each class's boxes are shifted by :func:`class_offsets`, so boxes of two classes
    cannot overlap, and one NMS runs over all of them.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    return nms(boxes + class_offsets(boxes, classes), scores, iou_threshold, max_keep)


def class_offsets(boxes: Tensor, classes: Tensor) -> Tensor:
    """Per-box shift ``class * (coordinate span + 1)`` of ``(..., n, 4)`` boxes.

    The span is ``max - min`` of every coordinate of the ``n`` boxes (not ``max``
    alone: decoded boxes can start left of 0, and ``class * (max + 1)`` then lets two
    classes overlap), so shifted boxes of different classes are always disjoint.

    Example:
        >>> b = torch.tensor([[-5.0, 0, 5, 5], [-5.0, 0, 5, 5]])
        >>> class_offsets(b, torch.tensor([0, 1])).flatten().tolist()
        [0.0, 11.0]
    """
    span = boxes.amax((-2, -1), keepdim=True) - boxes.amin((-2, -1), keepdim=True) + 1
    return classes.to(boxes.dtype)[..., None] * span
