"""``edgeslim predict``: eager, raw-head ONNX and NMS-in-graph ONNX draw the same boxes."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeslim.cli.main import main

sys.path.insert(0, str(Path(__file__).parents[1] / "export"))
from test_postprocess import TOY  # noqa: E402 - a YOLO-shaped toy detector, scores vary


@pytest.fixture
def setup(tmp_path):
    f = tmp_path / "toy.py"
    f.write_text(TOY)
    rng = np.random.default_rng(0)
    images = []
    for i, (h, w) in enumerate([(96, 128), (64, 64)]):  # not the model's 64x64: scaled back
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(p)
        images.append(p)
    return f, images


def run(model, images, out, *extra):
    argv = ["predict", str(model), *map(str, images), "-o", str(out), "--conf", "0.3", *extra]
    assert main(argv) == 0
    return json.loads((out / "detections.json").read_text())


def test_eager_raw_onnx_and_nms_onnx_agree(setup, tmp_path):
    f, images = setup
    spec = [f"{f}:make", "--input-shape", "1,3,64,64"]
    eager = run(spec[0], images, tmp_path / "eager", *spec[1:], "--data", "driving")
    assert (
        main(
            ["export", f"{f}:make", "--input-shape", "1,3,64,64", "-o", str(tmp_path / "raw.onnx")]
        )
        == 0
    )
    assert (
        main(
            [
                "export",
                f"{f}:make",
                "--input-shape",
                "1,3,64,64",
                "--postprocess",
                "nms",
                "--conf",
                "0.3",
                "-o",
                str(tmp_path / "nms.onnx"),
            ]
        )
        == 0
    )
    raw = run(tmp_path / "raw.onnx", images, tmp_path / "raw")
    nms = run(tmp_path / "nms.onnx", images, tmp_path / "nms")
    for e, r, n, img in zip(eager, raw, nms, images, strict=True):
        h, w = Image.open(img).size[::-1]
        drawn = Image.open(e["drawing"])
        assert drawn.size == (w, h)  # drawn on the original image
        assert len(e["detections"]) == len(r["detections"]) == len(n["detections"]) > 0
        for a, b in zip(e["detections"], n["detections"], strict=True):
            assert a["class"] == b["class"]
            np.testing.assert_allclose(a["box_xyxy"], b["box_xyxy"], atol=0.05)
        for d in e["detections"]:
            x1, y1, x2, y2 = d["box_xyxy"]
            assert -1 <= x1 < x2 <= w + 1 and -1 <= y1 < y2 <= h + 1
            assert d["name"] in (
                "Car",
                "Truck",
                "Pedestrian",
                "Cyclist",
                "TrafficSign",
                "TrafficLight",
            )


def test_unreadable_image_is_a_clear_error(setup, tmp_path, capsys):
    f, _ = setup
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    out = tmp_path / "o"
    argv = ["predict", f"{f}:make", "--input-shape", "1,3,64,64", str(bad), "-o", str(out)]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "cannot read image" in err and str(bad) in err and "Traceback" not in err


def test_report_picture_of_detections_before_and_after(setup, tmp_path):
    """The compress report's picture: input model (left) and deployed file (right), per image."""
    import io

    from edgeslim.bench.report import markdown
    from edgeslim.data.detection import DetectionDataset, pad_boxes
    from edgeslim.export.onnx import export_onnx
    from edgeslim.models.spec import load_model
    from edgeslim.tasks.detection.detect import NMSConfig
    from edgeslim.workflows.predict import OnnxDetector, before_after_png, torch_detector

    f, _ = setup
    lm = load_model(f"{f}:make", input_shape=(1, 3, 64, 64))
    onnx = export_onnx(lm.model, lm.require_input(), tmp_path / "m.onnx").path
    rng = np.random.default_rng(1)
    ds = DetectionDataset(
        rng.integers(0, 255, (4, 64, 64, 3), dtype=np.uint8), pad_boxes([np.zeros((0, 5))] * 4)
    )
    cfg = NMSConfig(conf=0.3)
    png = before_after_png(torch_detector(lm.model, cfg), OnnxDetector(onnx, cfg), ds, 3, (), cfg)
    sheet = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert sheet.shape[0] > 3 * 64 and sheet.shape[1] == 2 * 64 + 8
    # the same model on both sides: the two halves of every row are identical drawings
    for r in range(3):
        top = 16 + r * (64 + 8)
        left, right = sheet[top : top + 64, :64], sheet[top : top + 64, 72:136]
        assert np.array_equal(left, right)
        assert (left != sheet[top : top + 64, :64].min()).any()
    md = markdown.render(
        {
            "model": "m",
            "recipe": "r",
            "data": "driving",
            "threads": 1,
            "summary": {},
            "stages": [],
            "targets": {},
            "layers": [],
            "detections_png": str(tmp_path / "detections.png"),
        }
    )
    assert "![before and after](detections.png)" in md
