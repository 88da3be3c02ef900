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
