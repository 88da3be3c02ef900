"""Detector feature imitation (Wang et al. 2019): the mask, the loss, and a YOLO student."""

import pytest
import torch

from edgeslim.core.errors import EdgeslimError
from edgeslim.distill.distiller import Distiller
from edgeslim.distill.hooks import Outputs
from edgeslim.distill.losses import LOSSES, LossSpec, Probe
from edgeslim.distill.losses.detector_features import imitation_loss, object_mask
from edgeslim.models import build_zoo_model


def test_mask_marks_cells_whose_centre_is_in_a_grown_box():
    t = torch.tensor([[[2.0, 9, 9, 15, 15], [-1, 0, 0, 32, 32]]])  # second row is padding
    m0 = object_mask(t, 4, 4, (32, 32), margin=0)  # cell centres at 4, 12, 20, 28
    assert m0[0].nonzero().tolist() == [[1, 1]]
    m1 = object_mask(t, 4, 4, (32, 32), margin=1)  # grown by 8 px: 1..23
    assert m1[0].sum() == 9 and m1[0, :3, :3].all()
    assert object_mask(torch.full((1, 2, 5), -1.0), 4, 4, (32, 32)).sum() == 0


def test_only_the_object_region_counts():
    torch.manual_seed(0)
    t = torch.randn(1, 8, 4, 4)
    y = torch.tensor([[[0.0, 0, 0, 15, 15]]])
    mask = object_mask(y, 4, 4, (32, 32), margin=0)
    s = t.clone()
    s[..., 2:, 2:] += 5.0  # far from the box: no loss
    total, n = imitation_loss(s, t, mask)
    assert float(total) == 0.0 and float(n) == 4
    s[..., 0, 0] += 1.0  # one masked cell, eight channels, difference 1
    total, _ = imitation_loss(s, t, mask)
    assert float(total) == pytest.approx(8.0)


def test_loss_formula_through_the_registry():
    torch.manual_seed(0)
    fs, ft = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    y = torch.tensor([[[0.0, 0, 0, 32, 32]], [[-1.0, 0, 0, 0, 0]]])  # image 2 has no object
    spec = LossSpec(beta=0.5, layers=(("a", "a"),))
    probe = Probe(Outputs(None, {"a": fs}), (Outputs(None, {"a": ft}),), input_shape=(2, 3, 32, 32))
    loss = LOSSES.get("det_feature").build(spec, probe)
    got = loss(Outputs(None, {"a": fs}), [Outputs(None, {"a": ft})], y)
    want = 0.5 * (fs[0] - ft[0]).pow(2).sum() / (2 * 16)  # every cell of image 1, none of 2
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    with pytest.raises(EdgeslimError, match="image inputs"):
        LOSSES.get("det_feature").build(spec, Probe(Outputs(None, {}), ()))


def test_yolo_student_imitates_the_teacher_neck():
    torch.manual_seed(0)
    teacher = build_zoo_model("yolov5s", num_classes=3).eval()
    student = build_zoo_model("yolov5n", num_classes=3)
    x = torch.rand(2, 3, 64, 64)
    y = torch.tensor([[[0.0, 8, 8, 40, 40]], [[2.0, 30, 10, 60, 50]]])
    d = Distiller.build(student, [teacher], "kd+det_feature", LossSpec(), x, task="detection")
    feat = next(loss for loss in d.losses if type(loss).__name__ == "DetectorFeatureImitation")
    assert feat.student_layers == ("td3", "pan4", "pan5")
    assert all(a.weight.shape[0] == 2 * a.weight.shape[1] for a in feat.adapters)  # n -> s width
    loss, _ = d(student, x, y)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(a.weight.grad is not None and a.weight.grad.abs().sum() > 0 for a in feat.adapters)
