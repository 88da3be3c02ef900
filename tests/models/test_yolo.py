"""The YOLOv5-style zoo detectors: head shapes at every stride, width/depth multipliers,
ONNX export with ORT parity on each of the three outputs, and structured pruning from
the CLI that keeps the head's output shapes while it removes channels in the C3 blocks
and the concat neck."""

import json

import pytest
import torch

from edgeslim.cli.main import main
from edgeslim.core.outputs import flatten_outputs
from edgeslim.export.onnx import export_onnx
from edgeslim.export.ort import ort_outputs, ort_session
from edgeslim.models import ZOO, build_zoo_model
from edgeslim.models.inputs import InputSpec
from edgeslim.models.spec import load_model
from edgeslim.models.yolo import YOLOv5
from edgeslim.prune import PruneConfig, prune


def _params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", ["yolov5n", "yolov5s"])
def test_head_shapes_at_default_input(name):
    entry = ZOO.get(name)
    assert entry.input_shape == (1, 3, 256, 256) and entry.task == "detection"
    with torch.device("meta"):  # shapes only
        out = build_zoo_model(name, num_classes=4)(torch.empty(2, 3, 256, 256))
    assert [tuple(p.shape) for p in out] == [(2, 27, 32, 32), (2, 27, 16, 16), (2, 27, 8, 8)]


def test_multipliers_scale_the_model():
    n, s = build_zoo_model("yolov5n"), build_zoo_model("yolov5s")
    # width x2 -> about 4x the parameters (convs are width^2); YOLOv5's own: 1.9M vs 7.2M
    assert 1.6e6 < _params(n) < 2.0e6 and 3.5 < _params(s) / _params(n) < 4.2
    deep = YOLOv5(depth=1.0, width=0.25)
    assert len(deep.c3_3.m) == 9 and len(n.c3_3.m) == 3


def _ort_parity(model, path, x):
    with torch.no_grad():
        ref = flatten_outputs(model(x))
    got = ort_outputs(ort_session(path), x.numpy())
    assert list(got) == list(ref) == ["output0", "output1", "output2"]
    for name, t in ref.items():
        assert got[name].shape == tuple(t.shape)
        assert abs(got[name] - t.numpy()).max() <= 1e-4 * max(1.0, float(t.abs().max())), name


def test_pruned_keeps_heads_and_exports_with_parity(tmp_path):
    """Pruning at 0.3 (widths rounded to 8) through C3 and the concat neck: the three head
    maps keep their shapes, MACs drop, and ONNX Runtime matches eager on every output."""
    torch.manual_seed(0)
    base = build_zoo_model("yolov5n").eval()
    x = torch.randn(1, 3, 64, 64)
    res = prune(base, x, PruneConfig(ratio=0.3, round_to=8))
    pruned = res.model.eval()
    assert res.macs[1] < 0.8 * res.macs[0]
    assert [h.out_channels for h in pruned.head] == [33, 33, 33]
    assert pruned.c3_3.cv1.conv.out_channels < base.c3_3.cv1.conv.out_channels
    assert all(m.out_channels % 8 == 0 for m in pruned.modules()
               if isinstance(m, torch.nn.Conv2d) and m not in set(pruned.head))  # fmt: skip
    r = export_onnx(pruned, InputSpec((1, 3, 64, 64)), tmp_path / "y.onnx")
    assert list(r.output_diffs) == ["output0", "output1", "output2"]
    xb = torch.randn(3, 3, 64, 64)  # a batch the export never saw (dynamic batch axis)
    with torch.no_grad():
        a, b = base(xb), pruned(xb)
    assert [t.shape for t in a] == [t.shape for t in b]
    _ort_parity(pruned, tmp_path / "y.onnx", xb)


@pytest.mark.slow  # 15-20 s: the pruned export above covers the same graph
def test_onnx_parity_at_default_size(tmp_path):
    torch.manual_seed(0)
    model = build_zoo_model("yolov5n").eval()
    export_onnx(model, InputSpec((1, 3, 256, 256)), tmp_path / "y.onnx")
    _ort_parity(model, tmp_path / "y.onnx", torch.randn(2, 3, 256, 256))


@pytest.mark.slow  # 35 s on a loaded 2-core box: the CLI on top of the test above
def test_prune_cli_keeps_head_shapes(tmp_path):
    out = tmp_path / "p"
    args = ["prune", "yolov5n", "--input-shape", "1,3,64,64", "--ratio", "0.3", "--round-to",
            "8", "-o", str(out), "--batch", "1", "--runs", "2", "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    stages = json.loads((out / "report.json").read_text())["stages"]
    assert stages[-1]["macs"] < 0.85 * stages[0]["macs"]
    base, pruned = build_zoo_model("yolov5n"), load_model(str(out)).model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = base.eval()(x), pruned(x)
    assert [t.shape for t in a] == [t.shape for t in b]
    assert [h.out_channels for h in pruned.head] == [33, 33, 33]
    assert pruned.c3_3.cv1.conv.out_channels < base.c3_3.cv1.conv.out_channels
