"""YOLOv5's anchors, head decoding and loss (Jocher et al., ultralytics/yolov5, v6.0
design; Redmon and Farhadi, "YOLO9000", CVPR 2017, for anchor boxes).

A detector returns one raw map per stride (8, 16, 32), ``(N, A * (5 + C), H/s, W/s)``
with ``A = 3`` anchors. :func:`decode_heads` turns them into one tensor of rows, the
tensor the ``detection`` task scores, ``(N, K, 5 + C + 5)``::

    [cx, cy, w, h, obj, cls_0 .. cls_{C-1}, grid_x, grid_y, stride, anchor_w, anchor_h]

the box in input pixels (``xy = (2 sigmoid(t) - 0.5 + grid) * stride``,
``wh = (2 sigmoid(t))^2 * anchor``), objectness and class logits, and, last, where the
row comes from (constants, no gradient), which the loss needs to assign targets.

:func:`yolo_loss` follows YOLOv5's ``ComputeLoss``: a target goes to every anchor whose
width and height ratios to it are within 4x, in the cell holding its centre and the
two neighbouring cells nearest the centre; the loss is CIoU on those (box), BCE on the
objectness of every row with the matched rows' CIoU as target, weighted by stride
(4.0, 1.0, 0.4), and BCE on the matched rows' classes. Gains are YOLOv5's for 3
levels: box 0.05, obj 1.0 * (image area / 640^2), cls 0.5 * C / 80. YOLOv5 multiplies
the sum by the batch size and accumulates gradients to a nominal batch of 64 before a
step at lr 0.01; here the sum is multiplied by that nominal batch (:data:`NOMINAL_BATCH`)
instead, so the loss stays a per-image mean (as the trainer expects) and a step at lr
0.01 is YOLOv5's at any batch size. Without it, SGD at 0.01 steps 64x too short: 18
epochs of ``driving`` at lr 0.1 reached 0.8% mAP@0.5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from edgeslim.core.errors import EdgeslimError
from edgeslim.tasks.detection.boxes import ciou, xyxy_to_cxcywh

# YOLOv5's default anchors (P3, P4, P5; w, h px at 640) scaled by 0.4 for 256x256 inputs
ANCHORS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((4.0, 5.2), (6.4, 12.0), (13.2, 9.2)),
    ((12.0, 24.4), (24.8, 18.0), (23.6, 47.6)),
    ((46.4, 36.0), (62.4, 79.2), (149.2, 130.4)),
)
FIRST_STRIDE = 8  # px of the first (finest) head map
META = 5  # trailing columns of a row: grid_x, grid_y, stride, anchor_w, anchor_h
ANCHOR_T = 4.0  # largest width or height ratio between a target and its anchor
BALANCE = (4.0, 1.0, 0.4)  # objectness weight of strides 8, 16, 32
BOX_GAIN, OBJ_GAIN, CLS_GAIN = 0.05, 1.0, 0.5
NOMINAL_BATCH = 64  # YOLOv5's nbs: its loss is a sum over this many images a step


def head_maps(raw: object) -> list[Tensor]:
    """The head maps of a detector's output: a tuple/list of tensors or a dict of them."""
    maps = list(raw.values()) if isinstance(raw, Mapping) else raw
    if torch.is_tensor(maps) or not isinstance(maps, Sequence) or not maps:
        raise EdgeslimError(
            f"a detector must return one map per stride (a tuple of {len(ANCHORS)} tensors), "
            f"got a {type(raw).__name__}"
        )
    if not all(torch.is_tensor(m) and m.dim() == 4 for m in maps):
        raise EdgeslimError("every detector output must be a (N, A*(5+C), H, W) tensor")
    return list(maps)


def decode_heads(raw: object, anchors=ANCHORS) -> Tensor:
    """Raw head maps -> rows ``(N, K, 5 + C + 5)`` (the module docstring has the layout).

    Example:
        >>> rows = decode_heads([torch.zeros(1, 3 * 7, 4, 4), torch.zeros(1, 21, 2, 2),
        ...                      torch.zeros(1, 21, 1, 1)])
        >>> tuple(rows.shape), float(rows[0, 0, 0]), float(rows[0, 0, 2])
        ((1, 63, 12), 4.0, 4.0)
    """
    maps = head_maps(raw)
    if len(maps) != len(anchors):
        raise EdgeslimError(f"a detector must return {len(anchors)} head maps, got {len(maps)}")
    rows = []
    first = maps[0].shape[-1]
    for p, anc in zip(maps, anchors, strict=True):
        n, ch, ny, nx = p.shape
        a = len(anc)
        if ch % a or ch // a < 6:
            raise EdgeslimError(
                f"a head map has {ch} channels: not {a} anchors x (5 + classes) with a class"
            )
        d = ch // a
        stride = FIRST_STRIDE * first / nx
        p = p.float().view(n, a, d, ny, nx).permute(0, 1, 3, 4, 2)  # N, A, H, W, 5 + C
        gy, gx = torch.meshgrid(
            torch.arange(ny, device=p.device, dtype=p.dtype),
            torch.arange(nx, device=p.device, dtype=p.dtype),
            indexing="ij",
        )
        grid = torch.stack((gx, gy), -1)  # H, W, 2
        wh_a = torch.tensor(anc, device=p.device, dtype=p.dtype).view(1, a, 1, 1, 2)
        s = p[..., :4].sigmoid()
        xy = (s[..., :2] * 2 - 0.5 + grid) * stride
        wh = (s[..., 2:4] * 2).pow(2) * wh_a
        meta = torch.cat(
            (
                grid.expand(n, a, ny, nx, 2),
                torch.full((n, a, ny, nx, 1), stride, device=p.device, dtype=p.dtype),
                wh_a.expand(n, a, ny, nx, 2),
            ),
            -1,
        )
        rows.append(torch.cat((xy, wh, p[..., 4:], meta), -1).reshape(n, a * ny * nx, d + META))
    return torch.cat(rows, 1)


def num_classes_of(rows: Tensor) -> int:
    """Classes of a rows tensor: its width less box (4), objectness (1) and :data:`META`."""
    return rows.shape[-1] - 5 - META


def assign(rows: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """YOLOv5's target assignment: ``(image, target, row)`` index triples of every match.

    ``targets`` is ``(N, M, 5)`` rows ``[class, x1, y1, x2, y2]`` (class < 0: padding).
    """
    meta = rows[0, :, -META:].detach()  # the same for every image
    gx, gy, stride, aw, ah = meta.unbind(-1)
    t = xyxy_to_cxcywh(targets[..., 1:5].float())  # N, M, 4
    tx = t[..., 0, None] / stride  # N, M, K: the centre in each row's grid units
    ty = t[..., 1, None] / stride
    dx, dy = (tx - gx - 0.5).abs(), (ty - gy - 0.5).abs()
    cell = ((tx.floor() == gx) & (dy < 1)) | ((ty.floor() == gy) & (dx < 1))
    rw, rh = t[..., 2, None] / aw, t[..., 3, None] / ah
    ratio = torch.maximum(torch.maximum(rw, 1 / rw), torch.maximum(rh, 1 / rh)) < ANCHOR_T
    real = (targets[..., 0] >= 0)[..., None]
    return (cell & ratio & real).nonzero(as_tuple=True)


def yolo_loss(rows: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """YOLOv5's loss of decoded rows against padded ``(N, M, 5)`` targets (per-image mean).

    Example:
        >>> rows = decode_heads([torch.zeros(2, 21, 8, 8), torch.zeros(2, 21, 4, 4),
        ...                      torch.zeros(2, 21, 2, 2)])
        >>> t = torch.tensor([[[1.0, 8, 8, 24, 40]], [[-1.0, -1, -1, -1, -1]]])
        >>> bool(yolo_loss(rows, t) > 0)
        True
    """
    rows = rows.float()
    n, k, _ = rows.shape
    c = num_classes_of(rows)
    b, ti, ri = assign(rows, targets)
    stride = rows[0, :, -3].detach()
    obj_t = rows.new_zeros(n, k)
    lbox = lcls = rows.new_zeros(())
    if len(b):
        tgt = targets[b, ti].float()
        iou = ciou(rows[b, ri, :4], xyxy_to_cxcywh(tgt[:, 1:5]))
        lbox = (1.0 - iou).mean()
        obj_t.view(-1).scatter_reduce_(0, b * k + ri, iou.detach().clamp(0), reduce="amax")
        if c > 1:
            on, off = 1.0 - 0.5 * label_smoothing, 0.5 * label_smoothing
            cls_t = torch.full((len(b), c), off, device=rows.device)
            cls_t[torch.arange(len(b)), tgt[:, 0].long()] = on
            lcls = F.binary_cross_entropy_with_logits(rows[b, ri, 5 : 5 + c], cls_t)
    bce = F.binary_cross_entropy_with_logits(rows[..., 4], obj_t, reduction="none")
    lobj = rows.new_zeros(())
    levels = torch.unique(stride)
    for i, s in enumerate(levels.tolist()):
        lobj = lobj + bce[:, stride == s].mean() * BALANCE[min(i, len(BALANCE) - 1)]
    first = stride == levels[0]
    meta = rows[0, first, -META:].detach()
    area = float((meta[:, 0].max() + 1) * (meta[:, 1].max() + 1)) * float(levels[0]) ** 2  # px^2
    scale = NOMINAL_BATCH * 3 / len(levels)
    return scale * (BOX_GAIN * lbox + OBJ_GAIN * area / 640**2 * lobj + CLS_GAIN * c / 80 * lcls)
