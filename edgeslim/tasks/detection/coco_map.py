"""COCO mean average precision of detections, computed by faster-coco-eval.

:func:`postprocess` turns decoded rows (:mod:`edgeslim.tasks.detection.yolo`) into
detections the way YOLOv5's validation does: score = objectness x class probability,
the best class per row, rows under ``conf`` dropped, the ``max_candidates`` best kept,
class-aware NMS at IoU ``iou``, at most ``max_det`` per image.

:class:`MeanAP` keeps every image's detections and ground truth and hands them to
faster-coco-eval (a C++ port of pycocotools' ``COCOeval``, same numbers) at
:meth:`MeanAP.compute`: AP averaged over classes, at IoU 0.5 (``map50``) or over IoU
0.50:0.05:0.95 (``map``), 101-point interpolation, up to 100 detections per image
(Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014). Classes without
a ground-truth box are left out of the mean, as COCO leaves them.

Unlike the other accumulators its statistics are lists, not sums: :meth:`MeanAP.state`
encodes them as one flat list that round-trips through :meth:`MeanAP.load_state`, but
summing two processes' lists is meaningless: the list ends with its own length, so a
summed one is refused with a clear error (data-parallel evaluation of detectors would
have to gather the lists; the built-in trainer's does not yet).

The task scores ``map50`` and ``map`` with two accumulators fed the same batches; the
NMS of a batch and the COCO evaluation of a set of detections are computed once and
reused by the second (:func:`postprocess_once`, :func:`coco_stats_once`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import weakref

import numpy as np
import torch
from torch import Tensor

from edgeslim.core.errors import EdgeslimError
from edgeslim.tasks.detection.boxes import batched_nms, cxcywh_to_xyxy
from edgeslim.tasks.detection.yolo import num_classes_of
from edgeslim.tasks.metrics import Accumulator


def postprocess(
    rows: Tensor,
    conf: float = 0.001,
    iou: float = 0.6,
    max_det: int = 100,
    max_candidates: int = 1000,
) -> list[Tensor]:
    """Detections per image: ``(n, 6)`` rows ``[x1, y1, x2, y2, score, class]``, best first.

    Example:
        >>> from edgeslim.tasks.detection.yolo import decode_heads
        >>> rows = decode_heads([torch.zeros(1, 21, 8, 8), torch.zeros(1, 21, 4, 4),
        ...                      torch.zeros(1, 21, 2, 2)])
        >>> postprocess(rows, conf=0.3)[0].shape  # sigmoid(0)^2 = 0.25 < 0.3: nothing
        torch.Size([0, 6])
    """
    c = num_classes_of(rows)
    rows = rows.detach().float()
    scores, classes = (rows[..., 5 : 5 + c].sigmoid() * rows[..., 4:5].sigmoid()).max(-1)
    out = []
    for r, score, cls in zip(rows, scores, classes, strict=True):
        keep = score > conf
        boxes, score, cls = cxcywh_to_xyxy(r[keep, :4]), score[keep], cls[keep]
        if len(score) > max_candidates:
            top = score.topk(max_candidates).indices
            boxes, score, cls = boxes[top], score[top], cls[top]
        k = batched_nms(boxes, score, cls, iou, max_det)
        out.append(torch.cat((boxes[k], score[k, None], cls[k, None].float()), 1))
    return out


class MeanAP(Accumulator):
    """COCO bbox mAP at IoU 0.5 (``iou="50"``) or 0.50:0.95 (``iou="50:95"``).

    Example:
        >>> m = MeanAP("50")
        >>> gt = torch.tensor([[[0.0, 10, 10, 50, 50]]])
        >>> m.add([torch.tensor([[10.0, 10, 50, 50, 0.9, 0]])], gt)
        >>> m.compute()
        1.0
    """

    def __init__(self, iou: str = "50") -> None:
        if iou not in ("50", "50:95"):
            raise ValueError(f"iou must be '50' or '50:95', got {iou!r}")
        self.iou = iou
        self.dets: list[np.ndarray] = []  # per image (n, 6)
        self.gts: list[np.ndarray] = []  # per image (m, 5) [class, x1, y1, x2, y2]
        self.num_classes = 0

    def update(self, outputs: Tensor, targets: Tensor) -> None:
        """Add a batch of decoded rows ``(N, K, 10 + C)`` and padded targets ``(N, M, 5)``."""
        self.num_classes = max(self.num_classes, num_classes_of(outputs))
        self.add(postprocess_once(outputs), targets)

    def add(self, detections: list[Tensor], targets: Tensor) -> None:
        """Add per-image detections (:func:`postprocess`'s form) and padded targets."""
        if len(detections) != len(targets):
            raise EdgeslimError(f"{len(detections)} detection sets for {len(targets)} images")
        for d, t in zip(detections, targets, strict=True):
            t = t[t[:, 0] >= 0].detach().float().cpu().numpy()
            self.dets.append(d.detach().float().cpu().numpy().reshape(-1, 6))
            self.gts.append(t.reshape(-1, 5))
            if len(t):
                self.num_classes = max(self.num_classes, int(t[:, 0].max()) + 1)

    @property
    def count(self) -> int:
        return len(self.gts)

    def compute(self) -> float:
        if not self.gts:
            return float("nan")
        if not any(len(g) for g in self.gts) or not any(len(d) for d in self.dets):
            return 0.0
        stats = coco_stats_once(self.dets, self.gts, self.num_classes)
        return stats["map50"] if self.iou == "50" else stats["map"]

    def state(self) -> list[float]:
        """``[images, per image: n_det, 6 n_det values, n_gt, 5 n_gt values, length]``."""
        out: list[float] = [float(len(self.gts))]
        for d, g in zip(self.dets, self.gts, strict=True):
            out += [float(len(d)), *d.ravel().tolist(), float(len(g)), *g.ravel().tolist()]
        return [*out, float(len(out) + 1)]  # its own length: a sum over processes breaks it

    def load_state(self, state: list[float]) -> None:
        if state and int(state[-1]) != len(state):
            raise EdgeslimError(
                "detection mAP statistics were summed over processes, which lists of "
                "boxes do not allow: evaluate detectors on one process"
            )
        self.dets, self.gts = [], []
        i = 1
        for _ in range(int(state[0]) if state else 0):
            for dest, width in ((self.dets, 6), (self.gts, 5)):
                n = int(state[i])
                dest.append(
                    np.asarray(state[i + 1 : i + 1 + n * width], np.float32).reshape(n, width)
                )
                i += 1 + n * width
        classes = [int(g[:, 0].max()) + 1 for g in self.gts if len(g)]
        self.num_classes = max([self.num_classes, *classes])


_LAST_POST: list = [None, None]  # (weak reference to the outputs, their detections)
_LAST_STATS: list = [None, None]  # (digest of the detections and targets, their stats)


def postprocess_once(outputs: Tensor) -> list[Tensor]:
    """:func:`postprocess` with its defaults, reused when the same tensor comes again."""
    ref = _LAST_POST[0]
    if ref is not None and ref() is outputs:
        return _LAST_POST[1]
    dets = postprocess(outputs)
    _LAST_POST[:] = [weakref.ref(outputs), dets]
    return dets


def coco_stats_once(dets: list[np.ndarray], gts: list[np.ndarray], num_classes: int) -> dict:
    """:func:`coco_stats`, reused when called again on equal detections and targets."""
    h = hashlib.sha256(str(num_classes).encode())
    for a in (*dets, *gts):
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    key = h.hexdigest()
    if _LAST_STATS[0] != key:
        _LAST_STATS[:] = [key, coco_stats(dets, gts, num_classes)]
    return _LAST_STATS[1]


def coco_stats(dets: list[np.ndarray], gts: list[np.ndarray], num_classes: int) -> dict:
    """``{"map": mAP@0.5:0.95, "map50": mAP@0.5, "per_class": [AP@0.5:0.95 or nan]}``."""
    from faster_coco_eval import COCO, COCOeval_faster

    images = [{"id": i + 1, "width": 1, "height": 1} for i in range(len(gts))]
    anns, results = [], []
    for i, (d, g) in enumerate(zip(dets, gts, strict=True)):
        for c, x1, y1, x2, y2 in g.tolist():
            w, h = x2 - x1, y2 - y1
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                         "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0})  # fmt: skip
        for x1, y1, x2, y2, s, c in d.tolist():
            results.append({"image_id": i + 1, "category_id": int(c) + 1,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s})  # fmt: skip
    cats = [{"id": c + 1, "name": str(c)} for c in range(num_classes)]
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        gt = COCO({"images": images, "annotations": anns, "categories": cats})
        dt = gt.loadRes(results)
        ev = COCOeval_faster(gt, dt, "bbox", print_function=lambda *a, **k: None)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"]  # T (IoU), R (recall), K (class), A (area), M (max dets)
    per_class = []
    for k in range(prec.shape[2]):
        p = prec[:, :, k, 0, -1]
        per_class.append(float(p[p > -1].mean()) if (p > -1).any() else float("nan"))
    return {"map": max(float(ev.stats[0]), 0.0), "map50": max(float(ev.stats[1]), 0.0),
            "per_class": per_class}  # fmt: skip
