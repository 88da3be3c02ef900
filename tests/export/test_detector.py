"""A detector exported with its post-processing (decode + ONNX ``NonMaxSuppression``):
ONNX Runtime returns the detections of the task's own decoding and greedy NMS
(:func:`postprocess` on :func:`decode_heads`), per image, within 1e-4 (boxes: 1e-4 of
their scale); a threshold that nothing passes gives empty outputs. The graph is
written by ``edgeslim export --postprocess nms`` from a saved random-weight yolov5n
(one export, ~15 s on a loaded 2-core box)."""

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from edgeslim.cli.main import main
from edgeslim.core.errors import EdgeslimError
from edgeslim.export.detector import OUTPUTS, export_detector
from edgeslim.export.ort import ort_outputs, ort_session
from edgeslim.models import build_zoo_model
from edgeslim.models.inputs import InputSpec
from edgeslim.models.saved import save_model
from edgeslim.models.spec import load_model
from edgeslim.tasks.detection import batched_nms, decode_heads, postprocess
from edgeslim.tasks.detection.boxes import nms

SPEC = InputSpec((1, 3, 128, 128))
CONF, IOU, MAX_DET = 0.3, 0.45, 30


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random-weight yolov5n with spread-out scores, exported by the CLI with NMS."""
    torch.manual_seed(0)
    lm = load_model("yolov5n", input_shape=SPEC.shape)
    model = lm.model
    for m in model.modules():  # BN statistics of one batch: unit-scale features, not ~0
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    with torch.no_grad():
        model.train()(SPEC.example(batch=4, seed=0))
    model.eval()
    for conv in model.head:  # logits of std ~0.5 without YOLOv5's prior: no ties at 0 or 1
        torch.nn.init.zeros_(conv.bias)
        conv.weight.data.mul_(0.2)
    tmp = tmp_path_factory.mktemp("det")
    save_model(lm, tmp / "m")
    path = tmp / "yolo_nms.onnx"
    args = ["export", str(tmp / "m"), "-o", str(path), "--postprocess", "nms",
            "--conf", str(CONF), "--iou", str(IOU), "--max-det", str(MAX_DET)]  # fmt: skip
    assert main(args) == 0
    return model, path


def reference(model, x, conf=CONF):
    with torch.no_grad():
        return postprocess(decode_heads(model(x)), conf, IOU, MAX_DET)


def test_cli_writes_one_nms_node(exported):
    graph = onnx.load(str(exported[1]))
    assert [n.op_type for n in graph.graph.node].count("NonMaxSuppression") == 1
    assert [o.name for o in graph.graph.output] == list(OUTPUTS)


def test_ort_matches_task_decode_and_nms(exported):
    model, path = exported
    sess = ort_session(path)
    x = SPEC.example(batch=2, seed=7)
    got = ort_outputs(sess, x.numpy())
    ref = reference(model, x)
    assert all(len(r) > 5 for r in ref) and any(len(r) == MAX_DET for r in ref)
    assert got["batch_index"].tolist() == [i for i, r in enumerate(ref) for _ in range(len(r))]
    for i, r in enumerate(ref):
        mine = got["batch_index"] == i
        # 1e-4 of the box scale (px; as export_onnx's parity): float32 ORT and eager convs
        # differ by ~1e-5 relative, and a box side is up to 4x a 149 px anchor
        scale = max(1.0, float(r[:, :4].abs().max()))
        np.testing.assert_allclose(got["boxes"][mine], r[:, :4].numpy(), atol=1e-4 * scale, rtol=0)
        np.testing.assert_allclose(got["scores"][mine], r[:, 4].numpy(), atol=1e-4, rtol=0)
        assert got["classes"][mine].tolist() == r[:, 5].long().tolist()
        assert got["classes"].dtype == np.int64
        assert len(set(got["classes"][mine].tolist())) > 1  # several classes: class-aware


def test_nothing_above_threshold_gives_empty_outputs(exported, tmp_path):
    model, path = exported
    graph = onnx.load(str(path))
    (conf,) = [t for t in graph.graph.initializer if t.name == "nms_conf"]
    conf.CopyFrom(numpy_helper.from_array(np.array([0.99], np.float32), "nms_conf"))
    high = tmp_path / "high.onnx"
    onnx.save(graph, str(high))
    x = SPEC.example(batch=2, seed=7)
    got = ort_outputs(ort_session(high), x.numpy())
    assert [len(r) for r in reference(model, x, conf=0.99)] == [0, 0]
    assert {k: v.shape for k, v in got.items()} == {
        "boxes": (0, 4), "scores": (0,), "classes": (0,), "batch_index": (0,),
    }  # fmt: skip


def test_class_offsets_keep_classes_apart_left_of_zero():
    # decoded boxes can start left of 0: a shift of class * (max + 1) made these overlap
    boxes = torch.tensor([[-300.0, -300, 20, 20], [-290.0, -290, 22, 22]])
    scores, classes = torch.tensor([0.9, 0.8]), torch.tensor([0, 1])
    assert nms(boxes, scores, 0.5).tolist() == [0]
    assert batched_nms(boxes, scores, classes, 0.5).tolist() == [0, 1]


def test_export_detector_refuses_a_classifier(tmp_path):
    with pytest.raises(EdgeslimError, match="one map per stride"):
        export_detector(build_zoo_model("resnet20"), InputSpec((1, 3, 32, 32)), tmp_path / "r.onnx")
