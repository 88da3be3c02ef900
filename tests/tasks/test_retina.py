"""RetinaNet in the ``detection`` task: the focal loss against its formula by hand and
against torchvision's ``sigmoid_focal_loss`` (its code written out, and the real one
where torchvision is installed), the box encoding round trip (hypothesis), the anchor
table, decoding and IoU assignment on hand cases, the family dispatch (YOLO rows keep
YOLO's loss), and the loss driving free head maps onto the targets."""

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslim.tasks import get_task
from edgeslim.tasks.detection import box_iou, decode_heads, postprocess, yolo_loss
from edgeslim.tasks.detection.heads import decode_outputs
from edgeslim.tasks.detection.retina import (
    DW_CLAMP,
    OBJ_LOGIT,
    assign,
    cell_anchors,
    decode,
    decode_retina,
    encode,
    focal_loss,
    is_retina_rows,
    retina_loss,
)

TASK = get_task("detection")
A = 9


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def retina_maps(n=1, c=3, side=8, levels=2, seed=0):
    """Raw RetinaNet maps for a ``8 * side`` px input: class maps, then box maps."""
    g = torch.Generator().manual_seed(seed)
    sides = [side >> i for i in range(levels)]
    cls = [torch.randn(n, A * c, s, s, generator=g) for s in sides]
    box = [0.1 * torch.randn(n, A * 4, s, s, generator=g) for s in sides]
    return cls + box


def torchvision_focal(inputs, targets, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss (v0.20), reduction "none", written out."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * loss


def test_focal_loss_by_hand():
    # logit ln 3: p = 0.75. FL = -alpha_t (1 - p_t)^2 ln p_t
    x = torch.tensor([math.log(3.0), math.log(3.0), 0.0, -2.0])
    t = torch.tensor([1.0, 0.0, 1.0, 0.0])
    want = [
        0.25 * 0.25**2 * -math.log(0.75),  # positive, p_t = 0.75
        0.75 * 0.75**2 * -math.log(0.25),  # negative, p_t = 0.25
        0.25 * 0.5**2 * -math.log(0.5),
        0.75 * (1 / (1 + math.exp(2))) ** 2 * -math.log(1 - 1 / (1 + math.exp(2))),
    ]
    assert focal_loss(x, t).tolist() == pytest.approx(want, rel=1e-6)
    assert focal_loss(x, t, alpha=0.5, gamma=0.0).tolist() == pytest.approx(
        (0.5 * F.binary_cross_entropy_with_logits(x, t, reduction="none")).tolist(), rel=1e-6
    )  # gamma 0: alpha-weighted cross-entropy


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), alpha=st.floats(0.05, 0.95), gamma=st.floats(0.0, 5.0))
def test_focal_loss_is_torchvisions(seed, alpha, gamma):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 6, generator=g) * 4
    t = (torch.rand(40, 6, generator=g) < 0.3).float()
    ref = torchvision_focal(x, t, alpha, gamma)
    assert torch.allclose(focal_loss(x, t, alpha, gamma), ref, rtol=1e-5, atol=1e-7)


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="no torchvision")
def test_focal_loss_matches_installed_torchvision():
    from torchvision.ops import sigmoid_focal_loss

    x = torch.randn(50, 4) * 3
    t = (torch.rand(50, 4) < 0.2).float()
    assert torch.allclose(focal_loss(x, t), sigmoid_focal_loss(x, t), rtol=1e-5, atol=1e-7)


boxes = st.tuples(
    st.floats(-50, 300), st.floats(-50, 300), st.floats(0.5, 400), st.floats(0.5, 400)
)


@settings(max_examples=60, deadline=None)
@given(box=boxes, anchor=boxes)
def test_encode_decode_round_trip(box, anchor):
    b, a = torch.tensor([box], dtype=torch.float64), torch.tensor([anchor], dtype=torch.float64)
    d = encode(b, a)
    if d[0, 2:].max() < DW_CLAMP:  # decode clamps larger dw, dh (a 62x growth)
        assert torch.allclose(decode(d, a), b, rtol=1e-9, atol=1e-9)
    d = d.clamp(-DW_CLAMP, DW_CLAMP)
    assert torch.allclose(encode(decode(d, a), a), d, rtol=1e-9, atol=1e-9)


def test_cell_anchors_scales_and_ratios():
    wh = cell_anchors(16.0)
    areas = (wh[:, 0] * wh[:, 1]).sqrt().view(3, 3)  # ratio-major
    for row in areas:
        assert row.tolist() == pytest.approx([16.0, 16 * 2 ** (1 / 3), 16 * 2 ** (2 / 3)])
    ratios = (wh[:, 1] / wh[:, 0]).view(3, 3)
    assert ratios[:, 0].tolist() == pytest.approx([0.5, 1.0, 2.0])


def test_decode_layout_by_hand():
    maps = [torch.zeros(1, A * 2, 4, 4), torch.zeros(1, A * 2, 2, 2)]
    maps += [torch.zeros(1, 36, 4, 4), torch.zeros(1, 36, 2, 2)]
    maps[2][0, 4 * 4 : 4 * 4 + 4, 1, 2] = torch.tensor([0.5, -0.25, math.log(2), 0.0])
    rows = decode_retina(maps)
    assert rows.shape == (1, A * (16 + 4), 4 + 1 + 2 + 5)  # box, obj, 2 classes, meta
    assert is_retina_rows(rows) and (rows[..., 4] == OBJ_LOGIT).all()
    assert (rows[..., 4].sigmoid() == 1.0).all()  # scores are the class probabilities
    # anchor 4 (ratio 1, scale 2^(1/3)), cell x=2, y=1, stride 8: centre (20, 12)
    size = 8 * 2 ** (1 / 3)
    r = rows[0, 4 * 16 + 1 * 4 + 2]
    assert r[:4].tolist() == pytest.approx([20 + 0.5 * size, 12 - 0.25 * size, 2 * size, size])
    assert r[-5:].tolist() == pytest.approx([2, 1, 8, size, size])
    assert rows[0, A * 16 :, -3].unique().tolist() == [16.0]


def test_assignment_by_hand():
    anchors = torch.tensor(
        [
            [0.0, 0, 10, 10],  # IoU 0.8182 with box 0 (shifted by 1): positive
            [0.0, 0, 10, 5],  # IoU 0.4286 with box 0: ignored (0.4 <= IoU < 0.5)
            [20.0, 20, 30, 30],  # no overlap: background
            [40.0, 40, 80, 80],  # IoU 0.1 with box 1, but its best anchor: forced positive
            [0.0, 0, 10, 4.5],  # IoU 0.3876 with box 0: background
        ]
    )
    gt = torch.tensor([[1.0, 0, 11, 10], [40.0, 40, 52.6491, 52.6491]])
    assert box_iou(gt, anchors)[0, :2].tolist() == pytest.approx([0.8182, 0.4286], abs=1e-4)
    assert assign(anchors, gt).tolist() == [0, -2, -1, 1, -1]
    assert assign(anchors, gt[:0]).tolist() == [-1] * 5


def test_family_dispatch_keeps_yolo():
    yolo = [torch.randn(2, 21, 8 // s, 8 // s) for s in (1, 2, 4)]
    t = torch.tensor([[[1.0, 8, 8, 24, 40]], [[-1.0, -1, -1, -1, -1]]])
    rows = decode_outputs(yolo)
    assert torch.equal(rows, decode_heads(yolo)) and not is_retina_rows(rows)
    assert TASK.loss(rows, t, 0.0) == yolo_loss(rows, t)
    rrows = TASK.outputs(tuple(retina_maps(n=2)))
    assert is_retina_rows(rrows)
    assert TASK.loss(rrows, t, 0.0) == retina_loss(rrows, t)


def test_loss_without_objects_is_the_negatives_focal_sum():
    rows = decode_retina(retina_maps(n=2))
    empty = torch.full((2, 1, 5), -1.0)
    c = rows.shape[-1] - 10
    want = sum(focal_loss(r[:, 5 : 5 + c], torch.zeros_like(r[:, 5 : 5 + c])).sum() for r in rows)
    assert float(retina_loss(rows, empty)) == pytest.approx(float(want) / 2, rel=1e-5)


def test_loss_fits_heads_to_boxes(one_thread):
    """Gradient descent on free raw maps: the NMSed detections land on the targets."""
    torch.manual_seed(0)
    maps = retina_maps(n=2, side=8, levels=2)
    for m in maps[:2]:  # the model's prior: p = 0.01 (ignored anchors are never trained)
        m.mul_(0.1).sub_(math.log(99))
    maps = [m.requires_grad_() for m in maps]
    t = torch.tensor(
        [[[0, 10, 12, 30, 40], [2, 30, 5, 60, 60]], [[1, 5, 5, 20, 15], [-1, -1, -1, -1, -1]]]
    )
    opt = torch.optim.Adam(maps, lr=0.1)
    first = None
    for _ in range(80):
        loss = TASK.loss(TASK.outputs(tuple(maps)), t, 0.0)
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first
    rows = TASK.outputs(tuple(maps)).detach()
    det = postprocess(rows, conf=0.5)
    assert [sorted(d[:, 5].tolist()) for d in det] == [[0.0, 2.0], [1.0]]
    for d, tt in zip(det, t, strict=True):
        tt = tt[tt[:, 0] >= 0]
        assert box_iou(d[:, :4], tt[:, 1:]).max(0).values.min() > 0.8
    m = TASK.new_metrics()
    m.update(rows, t)
    assert m.compute()["map50"] == 1.0


def test_distillation_on_retina_rows():
    t = torch.tensor([[[1.0, 8, 8, 24, 40]], [[-1.0, -1, -1, -1, -1]]])
    teacher = TASK.outputs(tuple(retina_maps(n=2, seed=1)))
    # soft term only (alpha 1): cross-entropy against the teacher's probabilities is
    # smallest (their entropy) for the teacher itself, and its box term is then 0
    same = TASK.distill(teacher.clone(), teacher, t, 2.0, 1.0)
    leaves = [m.requires_grad_() for m in retina_maps(n=2, seed=2)]
    student = TASK.outputs(tuple(leaves))
    other = TASK.distill(student, teacher, t, 2.0, 1.0)
    assert 0 < float(same) < float(other.detach())
    mixed = TASK.distill(student, teacher, t, 2.0, 0.5)  # with half the focal loss
    hard = retina_loss(student, t).detach()
    assert float(mixed.detach()) == pytest.approx(0.5 * float(other.detach()) + 0.5 * float(hard))
    mixed.backward()
    assert all(torch.isfinite(m.grad).all() and m.grad.abs().sum() > 0 for m in leaves)
    meter = TASK.parity.meter()
    meter.update(teacher, teacher + 1e-4)
    assert meter.result()["ok"]
