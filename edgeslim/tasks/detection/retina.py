"""RetinaNet's anchors, head decoding and focal loss (Lin et al., "Focal Loss for Dense
Object Detection", ICCV 2017, arXiv:1708.02002; the box encoding is Girshick et al.'s,
"Rich feature hierarchies...", CVPR 2014, appendix C).

A RetinaNet returns ``2L`` raw maps, class maps first (:mod:`edgeslim.models.retinanet`):
``L`` maps ``(N, A * C, H/s, W/s)`` of class logits, then ``L`` maps ``(N, A * 4, H/s, W/s)``
of box deltas, ``A = 9`` anchors per cell, strides 8, 16, 32, ... (each level half the
previous one's side). :func:`decode_retina` turns them into the rows of the YOLO decoder
(:mod:`.yolo`), so that mAP, NMS, parity, export and distillation read one layout::

    [cx, cy, w, h, obj, cls_0 .. cls_{C-1}, grid_x, grid_y, stride, anchor_w, anchor_h]

RetinaNet has no objectness: every anchor is a candidate, so ``obj`` is the constant
logit :data:`OBJ_LOGIT` (probability exactly 1.0 in float32), and ``score = obj x
class probability`` is the class probability. That constant also tells the task's
loss which family a rows tensor comes from (:func:`is_retina_rows`).

Anchors: at stride ``s``, sizes ``s * 2^(k/3)``, ``k = 0, 1, 2`` (the paper uses
``4 s``; driving objects are small at 256 px, a median of 12 px), times aspect
ratios ``h / w`` of 0.5, 1 and 2 (ratio-major, as torchvision orders them), centred at
``(grid + 0.5) * s``. Boxes are encoded as ``dx = (x - x_a) / w_a``,
``dy = (y - y_a) / h_a``, ``dw = log(w / w_a)``, ``dh = log(h / h_a)``.

:func:`retina_loss`: an anchor whose best IoU with a ground-truth box is at least 0.5
is positive (for that box), under 0.4 negative, in between ignored; each box's best
anchor is positive whatever its IoU. Sigmoid focal loss (alpha 0.25, gamma 2) over the
classes of every positive and negative anchor, plus smooth-L1 (beta 1/9) on the
positives' encoded boxes, both summed and divided by the number of positives (at least
1), then averaged over the images of the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from edgeslim.core.errors import EdgeslimError
from edgeslim.tasks.detection.boxes import box_iou, cxcywh_to_xyxy, xyxy_to_cxcywh

FIRST_STRIDE = 8  # px of the finest level (P3)
SCALES = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))  # anchor size / stride
RATIOS = (0.5, 1.0, 2.0)  # anchor height / width
OBJ_LOGIT = 30.0  # sigmoid(30) == 1.0 in float32: "no objectness, every anchor counts"
DW_CLAMP = math.log(1000.0 / 16)  # largest dw, dh decoded (torchvision's bound)
POS_IOU, NEG_IOU = 0.5, 0.4
ALPHA, GAMMA = 0.25, 2.0
BETA = 1 / 9  # smooth-L1 transition (Detectron's RetinaNet)


def cell_anchors(stride: float) -> Tensor:
    """The ``(A, 2)`` anchor widths and heights (px) of a level, ratio-major."""
    wh = []
    for r in RATIOS:
        for s in SCALES:
            size = stride * s
            wh.append((size / math.sqrt(r), size * math.sqrt(r)))
    return torch.tensor(wh)


def is_retina_maps(maps: list[Tensor]) -> bool:
    """Whether raw maps are RetinaNet's: ``L`` class maps then ``L`` box maps of A*4 channels."""
    if len(maps) < 2 or len(maps) % 2:
        return False
    half = len(maps) // 2
    a = len(RATIOS) * len(SCALES)
    cls, box = maps[:half], maps[half:]
    return all(
        b.shape[1] == 4 * a and c.shape[1] % a == 0 and c.shape[2:] == b.shape[2:]
        for c, b in zip(cls, box, strict=True)
    )


def is_retina_rows(rows: Tensor) -> bool:
    """Whether decoded rows come from :func:`decode_retina` (constant objectness)."""
    return bool(rows.shape[1] > 0 and (rows[0, :, 4] == OBJ_LOGIT).all())


def encode(boxes: Tensor, anchors: Tensor) -> Tensor:
    """``cxcywh`` boxes relative to ``cxcywh`` anchors -> ``(dx, dy, dw, dh)``.

    Example:
        >>> encode(torch.tensor([[12.0, 10, 20, 5]]), torch.tensor([[10.0, 10, 10, 10]]))
        tensor([[ 0.2000,  0.0000,  0.6931, -0.6931]])
    """
    d_xy = (boxes[..., :2] - anchors[..., :2]) / anchors[..., 2:4]
    # the floor keeps log finite where exp(dw) underflowed (dw < -87); no gradient there
    d_wh = torch.log((boxes[..., 2:4] / anchors[..., 2:4]).clamp(min=1e-30))
    return torch.cat((d_xy, d_wh), -1)


def decode(deltas: Tensor, anchors: Tensor) -> Tensor:
    """Inverse of :func:`encode`: ``(dx, dy, dw, dh)`` on ``cxcywh`` anchors -> ``cxcywh``."""
    xy = anchors[..., :2] + deltas[..., :2] * anchors[..., 2:4]
    wh = anchors[..., 2:4] * deltas[..., 2:4].clamp(max=DW_CLAMP).exp()
    return torch.cat((xy, wh), -1)


def decode_retina(maps: list[Tensor]) -> Tensor:
    """RetinaNet's raw maps -> rows ``(N, K, 5 + C + 5)`` (the module docstring's layout).

    Example:
        >>> maps = [torch.zeros(1, 9 * 2, 4, 4), torch.zeros(1, 9 * 2, 2, 2),
        ...         torch.zeros(1, 36, 4, 4), torch.zeros(1, 36, 2, 2)]
        >>> rows = decode_retina(maps)
        >>> tuple(rows.shape), rows[0, 0, :4].tolist()  # first anchor: 8 * (0.5, 1) at (4, 4)
        ((1, 180, 12), [4.0, 4.0, 11.313708305358887, 5.656854152557617])
    """
    if not is_retina_maps(maps):
        raise EdgeslimError("RetinaNet maps must be L class maps then L box maps of 36 channels")
    half = len(maps) // 2
    a = len(RATIOS) * len(SCALES)
    first = maps[0].shape[-1]
    rows = []
    for cls, box in zip(maps[:half], maps[half:], strict=True):
        n, ch, ny, nx = cls.shape
        c = ch // a
        stride = FIRST_STRIDE * first / nx
        cls = cls.float().view(n, a, c, ny, nx).permute(0, 1, 3, 4, 2)  # N, A, H, W, C
        box = box.float().view(n, a, 4, ny, nx).permute(0, 1, 3, 4, 2)
        gy, gx = torch.meshgrid(
            torch.arange(ny, device=cls.device, dtype=cls.dtype),
            torch.arange(nx, device=cls.device, dtype=cls.dtype),
            indexing="ij",
        )
        grid = torch.stack((gx, gy), -1).expand(n, a, ny, nx, 2)
        wh_a = cell_anchors(stride).to(cls).view(1, a, 1, 1, 2).expand(n, a, ny, nx, 2)
        anchors = torch.cat(((grid + 0.5) * stride, wh_a), -1)
        full = torch.full((n, a, ny, nx, 1), 1.0, device=cls.device, dtype=cls.dtype)
        parts = (decode(box, anchors), full * OBJ_LOGIT, cls, grid, full * stride, wh_a)
        rows.append(torch.cat(parts, -1).reshape(n, a * ny * nx, c + 10))
    return torch.cat(rows, 1)


def row_anchors(rows: Tensor) -> Tensor:
    """The ``(K, 4)`` ``cxcywh`` anchors of decoded rows (the same for every image)."""
    meta = rows[0, :, -5:].detach()
    return torch.cat(((meta[:, :2] + 0.5) * meta[:, 2:3], meta[:, 3:5]), -1)


def assign(anchors: Tensor, boxes: Tensor) -> Tensor:
    """Matched box per anchor: its index, -1 (background) or -2 (ignored).

    ``anchors`` ``(K, 4)`` and ``boxes`` ``(M, 4)`` are ``xyxy``. IoU >= 0.5: that box;
    < 0.4: background; between: ignored; each box's best anchor takes that box.

    Example:
        >>> a = torch.tensor([[0.0, 0, 10, 10], [20.0, 0, 30, 10], [40.0, 0, 50, 10]])
        >>> assign(a, torch.tensor([[1.0, 0, 11, 10], [40.0, 0, 44, 10]])).tolist()
        [0, -1, 1]
    """
    k = anchors.shape[0]
    matched = torch.full((k,), -1, dtype=torch.long, device=anchors.device)
    if len(boxes) == 0:
        return matched
    iou = box_iou(boxes, anchors)  # M, K
    best, idx = iou.max(0)
    matched = torch.where(best >= POS_IOU, idx, matched)
    matched[(best >= NEG_IOU) & (best < POS_IOU)] = -2
    forced = iou.argmax(1)  # each box's best anchor (a later box wins a shared one)
    matched[forced] = torch.arange(len(boxes), device=anchors.device)
    return matched


def focal_loss(logits: Tensor, targets: Tensor, alpha: float = ALPHA, gamma: float = GAMMA):
    """Elementwise sigmoid focal loss: ``-alpha_t (1 - p_t)^gamma log(p_t)``.

    Example:
        >>> round(float(focal_loss(torch.tensor([0.0]), torch.tensor([1.0]))), 5)
        0.04332
    """
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * (1 - p_t).pow(gamma) * ce


def retina_loss(rows: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Focal + smooth-L1 loss of decoded RetinaNet rows against ``(N, M, 5)`` targets.

    Targets are ``[class, x1, y1, x2, y2]`` px rows, class < 0 padding. The result is
    the per-image mean of ``(focal + box) / max(1, positives)``.

    Example:
        >>> maps = [torch.zeros(1, 18, 8, 8), torch.zeros(1, 36, 8, 8)]
        >>> rows = decode_retina(maps)
        >>> bool(retina_loss(rows, torch.tensor([[[1.0, 8, 8, 20, 30]]])) > 0)
        True
    """
    rows = rows.float()
    c = rows.shape[-1] - 10
    anchors = row_anchors(rows)
    anchors_xyxy = cxcywh_to_xyxy(anchors)
    total = rows.new_zeros(())
    for r, t in zip(rows, targets, strict=True):
        t = t.float()
        t = t[(t[:, 0] >= 0) & (t[:, 3] > t[:, 1]) & (t[:, 4] > t[:, 2])]  # real, non-empty
        m = assign(anchors_xyxy, t[:, 1:5])
        pos = m >= 0
        cls_t = torch.zeros_like(r[:, 5 : 5 + c])
        if pos.any():
            cls_t[pos.nonzero()[:, 0], t[m[pos], 0].long()] = 1.0
        if label_smoothing:
            cls_t = cls_t * (1 - label_smoothing) + label_smoothing / 2
        valid = m != -2
        lcls = focal_loss(r[valid, 5 : 5 + c], cls_t[valid]).sum()
        lbox = r.new_zeros(())
        if pos.any():
            a = anchors[pos]
            pred = encode(r[pos, :4], a)
            goal = encode(xyxy_to_cxcywh(t[m[pos], 1:5]), a)
            lbox = F.smooth_l1_loss(pred, goal, beta=BETA, reduction="sum")
        total = total + (lcls + lbox) / max(1, int(pos.sum()))
    return total / max(1, len(rows))
