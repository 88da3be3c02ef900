"""The CLI stages on RetinaNet (``retinanet_r18_lite``): ``train`` runs the focal loss
through the generic trainer and records mAP, ``prune`` removes channels of the FPN and
the shared subnets while the eight head maps keep their shapes, ``quantize`` writes an
INT8 QDQ graph that matches its simulation on every map (the shared heads' calls share
one input quantizer), and ``export --postprocess nms`` puts NonMaxSuppression in the
graph. Tiny: 8 scenes of 64x64, one epoch."""

import json

import numpy as np
import onnx
import pytest
import torch

from edgeslim.cli.main import main
from edgeslim.export.ort import ort_outputs, ort_session
from edgeslim.models.saved import load_saved
from edgeslim.models.spec import load_model

DATA = "driving:n=8,size=64"
SHAPE = ["--input-shape", "1,3,64,64"]
FAST = ["--batch", "1", "--runs", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("retina") / "m"
    args = ["train", "retinanet_r18_lite", "--data", DATA, "--epochs", "1", "--batch-size",
            "8", "--lr", "0.01", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def pruned(trained):
    out = trained.parent / "p"
    args = ["prune", str(trained), *SHAPE, "--ratio", "0.3", "--round-to", "8", "-o",
            str(out), *FAST]  # fmt: skip
    assert main(args) == 0
    return out


def test_train_records_map(trained):
    meta = load_saved(trained).meta
    assert meta["task"] == "detection" and set(meta["test_metrics"]) == {"map50", "map"}
    (log,) = meta["history"]
    assert np.isfinite(log["train_loss"]) and log["train_loss"] > 0 and "val_map50" in log


def test_prune_keeps_the_head_maps(trained, pruned):
    stages = json.loads((pruned / "report.json").read_text())["stages"]
    assert stages[-1]["macs"] < 0.8 * stages[0]["macs"]
    base, small = load_model(str(trained)).model.eval(), load_model(str(pruned)).model.eval()
    assert small.fpn.lat3.out_channels < base.fpn.lat3.out_channels
    assert small.box_head.tower[0].out_channels < base.box_head.tower[0].out_channels
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = base(x), small(x)
    assert [t.shape for t in a] == [t.shape for t in b] and len(b) == 8


@pytest.mark.slow  # ~40 s each on a loaded 2-core box: PTQ + QDQ export, export with NMS
def test_quantize_and_export_with_nms(pruned, tmp_path):
    q = tmp_path / "q"
    args = ["quantize", str(pruned), *SHAPE, "--calib-data", DATA, "--calib-batches", "1",
            *FAST, "-o", str(q)]  # fmt: skip
    assert main(args) == 0  # the QDQ writer checks every map against the simulation
    report = json.loads((q / "report.json").read_text())
    assert [s["precision"] for s in report["stages"]][-1] == "int8"
    graph = onnx.load(str(q / "model.onnx")).graph
    assert len(graph.output) == 8 and any(n.op_type == "QuantizeLinear" for n in graph.node)
    path = tmp_path / "nms.onnx"
    # default --conf 0.25: a one-epoch model's scores sit near the 0.01 prior and tie,
    # and ties may leave NMS in either order (tests/models/test_retinanet.py spreads them)
    args = ["export", str(pruned), *SHAPE, "--postprocess", "nms", "-o", str(path)]
    assert main(args) == 0
    assert [n.op_type for n in onnx.load(str(path)).graph.node].count("NonMaxSuppression") == 1
    out = ort_outputs(ort_session(path), np.zeros((2, 3, 64, 64), np.float32))
    assert list(out) == ["boxes", "scores", "classes", "batch_index"]
