"""Issue 12's "a dataset we did not write" check, at test size: ``benchmarks/kitti_end_to_end.py``
writes KITTI's own layout with its own drawing code (not ``edgeslim.data.driving``), then
runs the user's CLI: train 2 epochs, prune, quantize to INT8 ONNX, evaluate all three."""

import json

import numpy as np
import pytest

from edgeslim.data import dataset_info, load_dataset
from edgeslim.data.kitti import KITTI_CLASSES


@pytest.fixture(scope="module")
def e2e(bench_script):
    return bench_script("kitti_end_to_end")


def test_written_files_are_kitti(e2e, tmp_path):
    root = e2e.write_kitti(tmp_path / "k", 30, seed=3)
    labels = sorted((root / "training" / "label_2").glob("*.txt"))
    assert len(labels) == 30 and len(list((root / "training" / "image_2").glob("*.png"))) == 30
    lines = [ln.split() for f in labels for ln in f.read_text().splitlines()]
    assert all(len(f) == 15 for f in lines)
    kinds = {f[0] for f in lines}
    assert "DontCare" in kinds and kinds - {"DontCare"} <= set(KITTI_CLASSES)
    assert any(float(f[1]) > 0 for f in lines if f[0] != "DontCare")  # truncated at the border
    assert any(not f.read_text() for f in labels)  # an image without objects
    data = f"kitti:{root},size=64"
    assert dataset_info(data).task == "detection"
    ds = load_dataset(data, "train")
    _, boxes = ds[0]
    real = np.asarray(boxes)[np.asarray(boxes)[:, 0] >= 0]
    assert (real[:, 1:] >= 0).all() and (real[:, 1:] <= 64).all()


def test_train_prune_quantize_evaluate(e2e, tmp_path):
    res = e2e.main(["--n", "20", "--size", "64", "--epochs", "2", "--batch-size", "8",
                    "--finetune-epochs", "1", "--runs", "2", "--work", str(tmp_path / "w"),
                    "--results", str(tmp_path / "r")])  # fmt: skip
    rows = res["rows"]
    assert set(rows) == {"fp32", "pruned", "int8"}
    for r in rows.values():
        assert r["n"] == 2  # ids 9 and 19: every 10th scene is the test split
        assert 0.0 <= r["map"] <= r["map50"] <= 1.0
    assert rows["pruned"]["params"] < rows["fp32"]["params"]
    tuned = json.loads((tmp_path / "w" / "pruned" / "report.json").read_text())["finetune"]
    assert (tuned["train"]["batch_size"], tuned["train"]["momentum"]) == (16, 0.937)  # YOLOv5's
    assert (tmp_path / "w" / "int8" / "model.onnx").stat().st_size == rows["int8"]["bytes"]
    saved = json.loads((tmp_path / "r" / "kitti_end_to_end.json").read_text())
    assert saved["rows"] == rows and saved["cpu"]
    assert "| int8" in (tmp_path / "r" / "kitti_end_to_end.md").read_text()
