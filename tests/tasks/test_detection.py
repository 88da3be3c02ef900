"""The ``detection`` task: box geometry and NMS against brute-force references, COCO
mAP oracles (perfect, shifted by a known IoU, wrong class), YOLOv5's anchor assignment
on a hand-worked case, and the loss driving raw head maps to the right boxes."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslim.core.errors import EdgeslimError
from edgeslim.tasks import get_task
from edgeslim.tasks.detection import (
    MeanAP,
    batched_nms,
    box_iou,
    ciou,
    collate_boxes,
    decode_heads,
    nms,
    postprocess,
)
from edgeslim.tasks.detection.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh
from edgeslim.tasks.detection.yolo import assign, yolo_loss

TASK = get_task("detection")


def greedy_reference(boxes, scores, thr):
    """Textbook greedy NMS in plain Python."""

    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
        return inter / (area - inter)

    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if all(iou(boxes[i], boxes[j]) <= thr for j in keep):
            keep.append(i)
    return keep


def random_boxes(seed, n):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 40
    wh = torch.rand(n, 2, generator=g) * 20 + 1
    return torch.cat((xy, xy + wh), 1), torch.rand(n, generator=g)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 60), thr=st.floats(0.1, 0.9))
def test_nms_matches_greedy_reference(seed, n, thr):
    boxes, scores = random_boxes(seed, n)
    assert nms(boxes, scores, thr).tolist() == greedy_reference(
        boxes.tolist(), scores.tolist(), thr
    )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 50))
def test_batched_nms_is_nms_per_class(seed, n):
    boxes, scores = random_boxes(seed, n)
    classes = torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(seed))
    got = set(batched_nms(boxes, scores, classes, 0.4).tolist())
    want = set()
    for c in range(3):
        idx = (classes == c).nonzero().flatten()
        want |= {
            int(idx[k]) for k in greedy_reference(boxes[idx].tolist(), scores[idx].tolist(), 0.4)
        }
    assert got == want


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_iou_and_ciou_properties(seed):
    a, _ = random_boxes(seed, 8)
    b, _ = random_boxes(seed + 1, 8)
    iou = box_iou(a, b)
    assert ((iou >= 0) & (iou <= 1)).all()
    assert torch.allclose(box_iou(a, a).diagonal(), torch.ones(8), atol=1e-5)
    diag = iou.diagonal()
    c = ciou(xyxy_to_cxcywh(a), xyxy_to_cxcywh(b))
    assert (c <= diag + 1e-6).all() and (c >= -1.0 - 1e-6).all()
    assert torch.allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(a)), a, atol=1e-5)


def test_ciou_penalties_by_hand():
    # same centre, same aspect ratio: CIoU = IoU = (2x2) / (4x4)
    assert float(ciou(torch.tensor([5.0, 5, 2, 2]), torch.tensor([5.0, 5, 4, 4]))) == pytest.approx(
        0.25
    )
    # disjoint, same size, centres 4 apart on x: IoU 0, rho^2 / c^2 = 16 / (6^2 + 2^2)
    got = ciou(torch.tensor([0.0, 0, 2, 2]), torch.tensor([4.0, 0, 2, 2]))
    assert float(got) == pytest.approx(-16 / 40, abs=1e-5)


def box_set():
    """Two images, three classes, boxes 40 px wide."""
    return torch.tensor(
        [
            [[0, 10, 10, 50, 50], [1, 60, 20, 100, 60], [2, 5, 70, 45, 110]],
            [[0, 100, 100, 140, 140], [1, 20, 20, 60, 60], [-1, -1, -1, -1, -1]],
        ],  # fmt: skip
        dtype=torch.float32,
    )


def as_detections(targets, dx=0.0, score=0.9, cls_shift=0):
    out = []
    for t in targets:
        t = t[t[:, 0] >= 0]
        boxes = t[:, 1:] + torch.tensor([dx, 0, dx, 0])
        cls = (t[:, :1] + cls_shift) % 3
        out.append(torch.cat((boxes, torch.full((len(t), 1), score), cls), 1))
    return out


def mean_ap(dets, targets):
    res = {}
    for iou in ("50", "50:95"):
        m = MeanAP(iou)
        m.add(dets, targets)
        res[iou] = m.compute()
    return res


def test_map_oracles():
    t = box_set()
    assert mean_ap(as_detections(t), t) == {"50": 1.0, "50:95": 1.0}
    # shifted 6 px on 40 px boxes: IoU 34/46 = 0.739 -> matched at 0.50 .. 0.70: 5 of 10
    assert mean_ap(as_detections(t, dx=6.0), t) == pytest.approx({"50": 1.0, "50:95": 0.5})
    # right boxes, wrong classes: nothing is found
    assert mean_ap(as_detections(t, cls_shift=1), t) == {"50": 0.0, "50:95": 0.0}
    # one image's detections missing: each class recalls half its boxes at most
    half = [as_detections(t)[0], torch.zeros(0, 6)]
    assert mean_ap(half, t)["50"] == pytest.approx((0.5 + 0.5 + 1.0) / 3, abs=0.01)


def test_map_state_round_trips():
    t = box_set()
    m = MeanAP("50:95")
    m.add(as_detections(t, dx=6.0), t)
    m2 = MeanAP("50:95")
    m2.load_state(m.state())
    assert m2.count == 2 and m2.compute() == pytest.approx(m.compute())
    summed = [2 * v for v in m.state()]  # what a data-parallel all-reduce would make of it
    with pytest.raises(EdgeslimError, match="one process"):
        m2.load_state(summed)


def heads(n=1, c=3, sizes=(8, 4, 2)):
    return [torch.zeros(n, 3 * (5 + c), s, s) for s in sizes]


def test_decode_layout():
    rows = decode_heads(heads())  # a 64x64 input: strides 8, 16, 32
    assert rows.shape == (1, 3 * (64 + 16 + 4), 5 + 3 + 5)
    # logits 0: centre at the cell's centre, size 1x the anchor
    first = rows[0, 0]
    assert first[:4].tolist() == pytest.approx([4.0, 4.0, 4.0, 5.2])
    assert first[-5:].tolist() == pytest.approx([0, 0, 8, 4.0, 5.2])
    assert rows[0, -1, -3] == 32  # the last row is a stride-32 row
    with pytest.raises(EdgeslimError, match="3 head maps"):
        decode_heads(heads()[:2])
    with pytest.raises(EdgeslimError, match="channels"):
        decode_heads([torch.zeros(1, 16, 8, 8)] * 3)


def test_assignment_by_hand():
    rows = decode_heads(heads())
    # a 12x24 box centred at (20.0, 12.0): anchors within 4x on both sides: P3's last
    # two (4x5.2 is 4.6x too short), all of P4's, P5's first (46.4x36: 3.9x, 1.5x)
    t = torch.tensor([[[0, 14.0, 0.0, 26.0, 24.0]]])
    b, ti, ri = assign(rows, t)
    meta = rows[0, ri, -5:]
    by_stride = {s: meta[meta[:, 2] == s] for s in (8, 16, 32)}
    # stride 8: centre (2.5, 1.5) in grid units, exactly between cells: the centre cell only
    # (a neighbour needs a fraction strictly under or over one half)
    assert sorted({(int(x), int(y)) for x, y in by_stride[8][:, :2].tolist()}) == [(2, 1)]
    assert len(by_stride[8]) == 2 and {round(a, 1) for a in by_stride[8][:, 3].tolist()} == {
        6.4,
        13.2,
    }
    # stride 16: centre (1.25, 0.75): cell (1, 0), the left neighbour (0, 0), the one
    # below (1, 1); three anchors each
    assert sorted({(int(x), int(y)) for x, y in by_stride[16][:, :2].tolist()}) == [
        (0, 0), (1, 0), (1, 1)]  # fmt: skip
    assert len(by_stride[16]) == 9
    # stride 32: centre (0.625, 0.375): cell (0, 0) and its right neighbour (the one
    # above would be off the grid)
    assert sorted({(int(x), int(y)) for x, y in by_stride[32][:, :2].tolist()}) == [(0, 0), (1, 0)]
    assert {round(a, 1) for a in by_stride[32][:, 3].tolist()} == {46.4}


@pytest.fixture
def one_thread():
    """Tiny tensors: a second thread only adds waits (seconds on a loaded 2-core box)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_loss_fits_heads_to_boxes(one_thread):
    """Gradient descent on the raw head maps alone (no network): the decoded, NMSed
    detections land on the targets, and mAP reaches 1.0."""
    torch.manual_seed(0)
    hs = [h.requires_grad_() for h in heads(n=2)]
    t = torch.tensor(
        [[[0, 10, 12, 30, 40], [2, 30, 5, 60, 60]], [[1, 5, 5, 20, 15], [-1, -1, -1, -1, -1]]]
    )
    opt = torch.optim.Adam(hs, lr=0.1)
    first = None
    for _ in range(60):
        loss = TASK.loss(TASK.outputs(tuple(hs)), t, 0.0)
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.25 * first
    rows = TASK.outputs(tuple(hs)).detach()
    det = postprocess(rows, conf=0.5)
    assert [sorted(d[:, 5].tolist()) for d in det] == [[0.0, 2.0], [1.0]]
    for d, tt in zip(det, t, strict=True):
        tt = tt[tt[:, 0] >= 0]
        assert box_iou(d[:, :4], tt[:, 1:]).max(0).values.min() > 0.8
    m = TASK.new_metrics()
    m.update(rows, t)
    assert m.compute() == {"map50": 1.0, "map": pytest.approx(1.0, abs=0.15)}


def test_task_entry():
    assert TASK.primary == "map50" and TASK.primary_metric.higher_is_better
    x = [(torch.zeros(3, 8, 8), torch.tensor([[1.0, 0, 0, 2, 2], [-1, -1, -1, -1, -1]]))] * 2
    xb, tb = collate_boxes(x)
    assert xb.shape == (2, 3, 8, 8) and tb.shape == (2, 1, 5)  # the all-padding column is gone
    rows = TASK.outputs(tuple(heads(n=2)))
    TASK.check_output(rows, xb, 3)
    with pytest.raises(EdgeslimError, match="3 classes but the data has 6"):
        TASK.check_output(rows, xb, 6)
    meter = TASK.parity.meter()
    meter.update(rows, rows + 1e-4)
    assert meter.result()["ok"]
    kd = TASK.distill(rows, rows, tb.new_full((2, 1, 5), -1.0))
    assert math.isfinite(float(kd))


@pytest.mark.slow  # 20-40 s: 40 training steps of yolov5n
def test_yolov5n_learns_a_few_scenes():
    """Loss, decoding, NMS and mAP together on the real model: 40 AdamW steps on 8
    driving scenes take mAP@0.5 on them from ~0 to over 0.3 (BN statistics recomputed
    for the final weights before the eval-mode score: 40 steps are too few for them)."""
    from edgeslim.data import load_dataset
    from edgeslim.models import build_zoo_model

    torch.manual_seed(0)
    ds = load_dataset("driving:n=8,size=128", "train")
    x, t = TASK.collate([ds[i] for i in range(8)])
    model = build_zoo_model("yolov5n").train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    for _ in range(40):
        loss = TASK.loss(TASK.outputs(model(x)), t, 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.reset_running_stats()
                bn.momentum = None  # a cumulative average: this batch's exact statistics
        model(x)
        model.eval()
        m = TASK.new_metrics()
        m.update(TASK.outputs(model(x)), t)
    assert m.compute()["map50"] > 0.3


def test_map50_and_map_share_one_nms_and_one_coco_evaluation(monkeypatch):
    """The task's two mAP metrics see the same batches: NMS and COCOeval run once."""
    from edgeslim.tasks import get_task
    from edgeslim.tasks.detection import coco_map

    calls = {"post": 0, "stats": 0}
    post, stats = coco_map.postprocess, coco_map.coco_stats

    def counting_post(*a, **k):
        calls["post"] += 1
        return post(*a, **k)

    def counting_stats(*a, **k):
        calls["stats"] += 1
        return stats(*a, **k)

    monkeypatch.setattr(coco_map, "postprocess", counting_post)
    monkeypatch.setattr(coco_map, "coco_stats", counting_stats)
    task = get_task("detection")
    metrics = [m.make() for m in task.metrics]
    torch.manual_seed(0)
    rows = torch.randn(2, 30, 10 + 3)
    rows[..., :4] = torch.rand(2, 30, 4) * 20 + torch.tensor([10.0, 10.0, 5.0, 5.0])
    targets = torch.tensor([[[0.0, 5, 5, 30, 30]], [[1.0, 2, 2, 20, 25]]])
    for m in metrics:
        m.update(rows, targets)
    values = [m.compute() for m in metrics]
    assert calls == {"post": 1, "stats": 1}, calls
    assert all(0.0 <= v <= 1.0 for v in values)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_yolo_loss_is_a_per_image_mean(seed):
    """The loss is YOLOv5's sum times NOMINAL_BATCH / batch: an image repeated in a batch
    of two gives the loss of the image alone, so lr 0.01 means the same at any batch."""
    g = torch.Generator().manual_seed(seed)
    hs = [torch.randn(1, 24, s, s, generator=g) for s in (8, 4, 2)]
    t = torch.tensor([[[1.0, 8, 8, 30, 40], [0, 30, 20, 50, 60]]])
    one = yolo_loss(decode_heads(hs), t)
    two = yolo_loss(decode_heads([h.repeat(2, 1, 1, 1) for h in hs]), t.repeat(2, 1, 1))
    assert float(two) == pytest.approx(float(one), rel=1e-5)
    assert float(one) > 0
