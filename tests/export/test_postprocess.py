"""Decode + class-aware NMS appended to a deployed raw-head file, FP32 and INT8 QDQ."""

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.export.detector import OUTPUTS
from edgeslim.export.onnx import export_onnx
from edgeslim.export.ort import ort_outputs, ort_session
from edgeslim.export.postprocess import append_postprocess
from edgeslim.models.inputs import InputSpec
from edgeslim.quant.config import PTQConfig
from edgeslim.quant.ptq import quantize_ptq
from edgeslim.quant.qdq import export_qdq
from edgeslim.tasks.detection.detect import Detect, NMSConfig

SPEC = InputSpec((1, 3, 64, 64))
TOY = """
import torch
from torch import nn

class Toy(nn.Module):
    # YOLO-shaped raw maps (3 anchors x (5 + 2 classes)) at strides 8, 16, 32, straight
    # from the pixels: scores differ from row to row, so NMS has no ties to break
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.p = nn.ModuleList(nn.Conv2d(3, 21, k, stride=k) for k in (8, 16, 32))
        for p in self.p:
            nn.init.normal_(p.weight, std=0.04)

    def forward(self, x):
        return [p(x) for p in self.p]

def make():
    return Toy()
"""


def toy():
    ns: dict = {}
    exec(TOY, ns)  # noqa: S102 - the test's own source
    return ns["make"]().eval()


CFG = NMSConfig(conf=0.3, iou=0.5, max_det=20)


def _check(raw_path, out, model):
    diffs = append_postprocess(raw_path, SPEC, out, CFG)
    assert diffs["ties"] == 0 and diffs["boxes"] <= 1e-3 and diffs["scores"] <= 1e-5
    g = onnx.load(str(out)).graph
    assert [o.name for o in g.output] == list(OUTPUTS)
    assert sum(n.op_type == "NonMaxSuppression" for n in g.node) == 1
    x = SPEC.example(batch=2, seed=5)
    got = list(ort_outputs(ort_session(out), x.numpy()).values())
    with torch.no_grad():
        ref = Detect(model, CFG)(x)
    return got, ref


def test_fp32_file_with_nms_matches_eager_detect(tmp_path):
    m = toy()
    raw = export_onnx(m, SPEC, tmp_path / "raw.onnx").path
    got, ref = _check(raw, tmp_path / "nms.onnx", m)
    assert len(got[0]) == len(ref[0]) > 0
    np.testing.assert_allclose(got[0], ref[0].numpy(), atol=1e-3)
    np.testing.assert_array_equal(got[2], ref[2].numpy())
    np.testing.assert_array_equal(got[3], ref[3].numpy())


def test_int8_qdq_file_keeps_its_quantization_and_gains_nms(tmp_path):
    m = toy()
    qm = quantize_ptq(m, [SPEC.example(batch=8)], PTQConfig(calib_batches=1), progress=False)
    raw = export_qdq(qm.model, SPEC, tmp_path / "int8.onnx").path
    out = tmp_path / "int8_nms.onnx"
    got, ref = _check(raw, out, qm.model)
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert ops.count("QuantizeLinear") == sum(
        n.op_type == "QuantizeLinear" for n in onnx.load(str(raw)).graph.node
    )
    # INT8 against its fake-quant twin: the same detections, to quantization noise
    assert abs(len(got[0]) - len(ref[0])) <= max(2, len(ref[0]) // 10)


def test_the_input_file_is_untouched_and_a_classifier_is_refused(tmp_path):
    m = toy()
    raw = export_onnx(m, SPEC, tmp_path / "raw.onnx").path
    before = raw.read_bytes()
    append_postprocess(raw, SPEC, tmp_path / "nms.onnx", CFG)
    assert raw.read_bytes() == before
    clf = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 10)).eval()
    f = export_onnx(clf, SPEC, tmp_path / "clf.onnx").path
    with pytest.raises(EdgeslimError, match="raw head maps"):
        append_postprocess(f, SPEC, tmp_path / "clf_nms.onnx", CFG)
    assert not (tmp_path / "clf_nms.onnx").exists()


def test_export_stage_writes_the_nms_twin(tmp_path):
    from edgeslim.models.spec import load_model
    from edgeslim.recipe import STAGES, parse_recipe
    from edgeslim.recipe.stages.export import ExportSettings, nms_path
    from edgeslim.recipe.state import PipelineContext, PipelineState

    f = tmp_path / "toy.py"
    f.write_text(TOY)
    rec = parse_recipe(
        f"version: 1\nmodel: {f}:make\ninput_shape: [1, 3, 64, 64]\nstages:\n  - export\n"
    )
    lm = load_model(f"{f}:make", input_shape=(1, 3, 64, 64))
    ctx = PipelineContext(rec.recipe, lm, tmp_path / "work", progress=False)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    s = ExportSettings(postprocess="nms", conf=0.3, iou=0.5, max_det=20)
    st = STAGES.get("export").run(PipelineState(lm), s, ctx)
    assert nms_path(st.onnx).is_file() and "class-aware NMS" in st.notes["postprocess"]
    assert [o.name for o in onnx.load(str(st.onnx)).graph.output] != list(OUTPUTS)  # raw stays


def test_cli_exports_a_saved_int8_detector_with_nms(tmp_path, capsys):
    from edgeslim.cli.main import main
    from edgeslim.core.methods import apply
    from edgeslim.models.saved import save_model
    from edgeslim.models.spec import LoadedModel, load_model

    f = tmp_path / "toy.py"
    f.write_text(TOY)
    lm = load_model(f"{f}:make", input_shape=(1, 3, 64, 64))
    qmodel, record = apply(
        lm.model, PTQConfig(calib_batches=1), calib=[(SPEC.example(batch=8), None)]
    )
    q = LoadedModel(qmodel, lm.source, lm.input, lm.name, lm.meta, [record.to_dict()])
    save_model(q, tmp_path / "q")
    out = tmp_path / "q_nms.onnx"
    args = ["export", str(tmp_path / "q"), "--postprocess", "nms", "--conf", "0.3", "-o", str(out)]
    assert main(args) == 0
    assert "INT8 QDQ + decode + class-aware NMS" in capsys.readouterr().out
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "NonMaxSuppression"} <= ops


def test_compress_ships_the_nms_twin_and_the_detections_picture(tmp_path):
    from edgeslim.recipe import compress, parse_recipe

    f = tmp_path / "toy.py"
    f.write_text(TOY)
    text = f"""
version: 1
model: {f}:make
input_shape: [1, 3, 64, 64]
data: driving:n=12,size=64
stages:
  - export: {{postprocess: nms, conf: 0.3, iou: 0.5}}
measure: {{runs: 2, batches: [1], threads: 1}}
"""
    out = tmp_path / "out"
    rep = compress(parse_recipe(text), out, progress=False)
    g = onnx.load(str(out / "model_nms.onnx")).graph
    assert [o.name for o in g.output] == list(OUTPUTS)
    assert [o.name for o in onnx.load(str(out / "model.onnx")).graph.output] != list(OUTPUTS)
    assert (out / "detections.png").is_file() and rep["detections_png"]
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "## Detections" in md and "<h2>Detections</h2>" in html
    assert any("class-aware NMS" in n["text"] for n in rep["notes"])
