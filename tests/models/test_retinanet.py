"""The RetinaNet zoo detectors: head shapes at every level, the focal-loss prior on the
class bias, structured pruning through the FPN laterals and the shared subnets checked
against the masked dense model on all eight outputs (head widths fixed), and ONNX
export with ORT parity on the raw maps and, with ``NonMaxSuppression`` in the graph,
on the detections against the task's own decoding and NMS."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeslim.core.outputs import flatten_outputs
from edgeslim.export.detector import export_detector
from edgeslim.export.onnx import export_onnx
from edgeslim.export.ort import ort_outputs, ort_session
from edgeslim.models import ZOO, build_zoo_model
from edgeslim.models.inputs import InputSpec
from edgeslim.prune import PruneConfig
from edgeslim.tasks import get_task
from edgeslim.tasks.detection import postprocess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "graph"))
from oracle import check_oracle, randomize_  # noqa: E402

SIDE = 64


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("name", ["retinanet_r18", "retinanet_r18_lite"])
def test_head_shapes_and_prior(name):
    entry = ZOO.get(name)
    assert entry.input_shape == (1, 3, 256, 256) and entry.task == "detection"
    model = build_zoo_model(name, num_classes=4)
    with torch.device("meta"):
        out = build_zoo_model(name, num_classes=4)(torch.empty(2, 3, 256, 256))
    sides = (32, 16, 8, 4)  # strides 8, 16, 32, 64
    assert [tuple(p.shape) for p in out] == [(2, 36, s, s) for s in sides] * 2
    bias = model.cls_head.out.bias
    assert torch.allclose(bias, torch.full_like(bias, -math.log(99)))  # pi = 0.01
    assert torch.allclose(bias.sigmoid(), torch.full_like(bias, 0.01))


def test_lite_is_smaller():
    n = [sum(p.numel() for p in build_zoo_model(m).parameters()) for m in ZOO.names()
         if m.startswith("retinanet")]  # fmt: skip
    assert sorted(n) == [3_175_098, 13_166_362]


def test_pruned_equals_masked_and_keeps_heads():
    """Pruning at 0.4: FPN laterals and the shared subnets lose channels together, every
    output of the pruned model equals the masked dense model's (1e-5), heads stay 54/36."""
    torch.manual_seed(0)
    model = randomize_(build_zoo_model("retinanet_r18_lite"))
    x = torch.randn(2, 3, SIDE, SIDE)
    pruned = check_oracle(model, x[:1], PruneConfig(ratio=0.4), x=x).eval()
    assert pruned.fpn.lat3.out_channels < model.fpn.lat3.out_channels
    assert pruned.cls_head.tower[0].out_channels < model.cls_head.tower[0].out_channels
    assert (pruned.cls_head.out.out_channels, pruned.box_head.out.out_channels) == (54, 36)
    with torch.no_grad():
        a, b = model(x), pruned(x)
    assert [t.shape for t in a] == [t.shape for t in b] and len(b) == 8


def test_onnx_parity_raw_and_nms(tmp_path):
    torch.manual_seed(0)
    model = build_zoo_model("retinanet_r18_lite").eval()
    with torch.no_grad():  # spread the class logits so that some boxes pass the threshold
        model.cls_head.out.bias.zero_()
        model.cls_head.out.weight.mul_(30)
    spec = InputSpec((1, 3, SIDE, SIDE))
    r = export_onnx(model, spec, tmp_path / "r.onnx")
    assert len(r.output_diffs) == 8 and r.max_abs_diff < 1e-4
    x = torch.randn(3, 3, SIDE, SIDE)  # a batch the export never saw
    with torch.no_grad():
        ref = flatten_outputs(model(x))
    got = ort_outputs(ort_session(tmp_path / "r.onnx"), x.numpy())
    for (name, t), g in zip(ref.items(), got.values(), strict=True):
        assert g.shape == tuple(t.shape)
        assert np.abs(g - t.numpy()).max() <= 1e-4 * max(1.0, float(t.abs().max())), name

    conf = 0.3
    export_detector(model, spec, tmp_path / "nms.onnx", score_thr=conf, iou_thr=0.45, max_det=30)
    out = ort_outputs(ort_session(tmp_path / "nms.onnx"), x.numpy())
    boxes, scores, classes, index = out.values()
    with torch.no_grad():
        want = postprocess(get_task("detection").outputs(model(x)), conf, 0.45, 30)
    assert sum(len(w) for w in want) == len(boxes) > 0
    for i, w in enumerate(want):
        mine = index == i
        assert np.array_equal(classes[mine], w[:, 5].long().numpy())
        assert np.abs(boxes[mine] - w[:, :4].numpy()).max(initial=0) < 1e-3
        assert np.abs(scores[mine] - w[:, 4].numpy()).max(initial=0) < 1e-5
