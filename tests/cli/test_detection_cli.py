"""``edgeslim train`` and ``edgeslim evaluate`` on a detector: the generic trainer runs
the ``detection`` task (YOLO loss, mAP logged) and the saved model and its ONNX export
are scored with mAP@0.5 and mAP@0.5:0.95. Tiny: 8 scenes of 64x64, one epoch."""

import json

import pytest

from edgeslim.cli.main import main
from edgeslim.models.saved import load_saved

DATA = "driving:n=8,size=64"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("det") / "m"
    args = ["train", "yolov5n", "--data", DATA, "--epochs", "1", "--batch-size", "8",
            "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    return out


def test_train_records_map(trained, capsys):
    meta = load_saved(trained).meta
    assert meta["task"] == "detection"
    assert set(meta["test_metrics"]) == {"map50", "map"}
    assert 0.0 <= meta["test_metrics"]["map"] <= meta["test_map50"] <= 1.0
    (log,) = meta["history"]
    assert log["train_loss"] > 0 and "val_map50" in log and "val_map" in log


def test_evaluate_prints_map(trained, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["evaluate", str(trained), "--data", DATA, "--json", str(out)]) == 0
    assert "mAP@0.5" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["task"] == "detection" and res["n"] == 8 and res["primary"] == "map50"
    assert res["map50"] == pytest.approx(load_saved(trained).meta["test_map50"])


@pytest.mark.slow  # the ONNX export costs 15-20 s on a 2-core box
def test_evaluate_onnx_matches_eager(trained, tmp_path):
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", str(trained), "-o", str(onnx_path)]) == 0
    out = tmp_path / "e.json"
    assert main(["evaluate", str(onnx_path), "--data", DATA, "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["map50"] == pytest.approx(load_saved(trained).meta["test_map50"], abs=1e-6)
