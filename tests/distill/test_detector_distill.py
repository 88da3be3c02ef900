"""Distillation of a detector: the distiller hands the losses the task's view of the
outputs (decoded rows, as the trainer's default loss does), so ``kd`` on a RetinaNet is
the detection task's KD: a teacher distilling into itself costs only its entropy and
the hard focal term, and a different student gets gradients on every head map."""

import pytest
import torch

from edgeslim.distill.distiller import Distiller
from edgeslim.distill.losses import LossSpec
from edgeslim.models.retinanet import RetinaNet
from edgeslim.tasks import get_task

TASK = get_task("detection")
T = torch.tensor([[[1.0, 8, 8, 24, 40]], [[-1.0, -1, -1, -1, -1]]])


def test_kd_on_retinanet_rows():
    torch.manual_seed(0)
    teacher, student = RetinaNet(6, 16, 32, 32, 1).eval(), RetinaNet(6, 16, 16, 16, 1)
    x = torch.randn(2, 3, 64, 64)
    spec = LossSpec(temperature=1.0, alpha=0.5)
    kd = Distiller.build(student, [teacher], "kd", spec, x, task=TASK)
    loss, rows = kd(student.train(), x, T)
    assert rows.shape == TASK.forward(teacher, x).shape  # the rows the metrics score
    with torch.no_grad():
        want = TASK.distill(TASK.forward(student.train(), x), TASK.forward(teacher, x), T, 1.0, 0.5)
    assert float(loss.detach()) == pytest.approx(float(want), rel=1e-5)
    loss.backward()
    assert student.cls_head.out.weight.grad.abs().sum() > 0
    assert student.box_head.out.weight.grad.abs().sum() > 0
