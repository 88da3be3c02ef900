"""Detection data on disk, on the tiny fixtures in ``tests/fixtures``: KITTI
(``kitti_tiny``: 10 images 128x40, a DontCare line, an empty label file) and YOLO txt
(``yolo_tiny_data``: 4 + 2 images 64x48, one image without a label file). Boxes come back
in pixels of the resized image; every malformed label is an EdgeslimError that names
the file and the line."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeslim.core.errors import EdgeslimError
from edgeslim.data import dataset_info, load_dataset
from edgeslim.data.kitti import KITTI_CLASSES
from edgeslim.data.kitti import parse_label_file as parse_kitti
from edgeslim.data.yolo_format import parse_label_file as parse_yolo

FIX = Path(__file__).resolve().parents[1] / "fixtures"
KITTI = FIX / "kitti_tiny"
YOLO = FIX / "yolo_tiny_data" / "data.yaml"


def real(t):
    return t[t[:, 0] >= 0]


def test_kitti_labels_and_splits():
    rows = parse_kitti(KITTI / "label_2" / "000002.txt", 128, 40)  # DontCare skipped
    want = [[3, 81.08, 17.37, 82.27, 21.07], [0, 49.19, 18.61, 54.82, 23.22],
            [0, 80.90, 19.42, 93.85, 29.73]]  # fmt: skip
    assert np.allclose(rows, want, atol=1e-2)
    info = dataset_info(f"kitti:{KITTI},size=64")
    assert info.task == "detection" and info.class_names == KITTI_CLASSES
    sizes = {s: len(load_dataset(f"kitti:{KITTI},size=64", s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 8, "val": 1, "test": 1}
    ds = load_dataset(f"kitti:{KITTI},size=64", "train")
    x, t = ds[2]
    assert tuple(x.shape) == (3, 64, 64)
    # boxes scaled with the image: x by 64/128, y by 64/40
    assert real(t)[1].tolist() == pytest.approx(
        [0, 49.19 / 2, 18.61 * 1.6, 54.82 / 2, 23.22 * 1.6], abs=1e-2
    )
    assert len(real(ds[5][1])) == 0  # the empty label file: an image without objects


def test_yolo_labels_and_splits():
    info = dataset_info(f"yolo:{YOLO},size=64")
    assert info.num_classes == 6 and info.task == "detection"
    train = load_dataset(f"yolo:{YOLO},size=64", "train")
    assert len(train) == 4 and len(load_dataset(f"yolo:{YOLO},size=64", "val")) == 2
    x, t = train[0]
    assert tuple(x.shape) == (3, 64, 64)
    first = real(t)[0]  # "3 0.770662 0.457771 0.063057 0.085871" at 64x64
    cx, cy, w, h = 0.770662 * 64, 0.457771 * 64, 0.063057 * 64, 0.085871 * 64
    assert first.tolist() == pytest.approx(
        [3, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], abs=1e-3
    )
    assert len(real(train[3][1])) == 0  # no label file: a background image
    with pytest.raises(EdgeslimError, match="no 'test' split"):
        load_dataset(f"yolo:{YOLO},size=64", "test")


def test_boxes_survive_the_loader_batches():
    from edgeslim.tasks import get_task

    ds = load_dataset(f"kitti:{KITTI},size=64", "train")
    x, t = get_task("detection").collate([ds[i] for i in range(4)])
    assert x.shape == (4, 3, 64, 64) and t.shape[0] == 4 and t.shape[2] == 5
    assert torch.isfinite(t).all() and (real(t.flatten(0, 1))[:, 1:] <= 64).all()


BAD_KITTI = [
    ("Car 0 0 0 1 2 3", "line 2: expected 15 fields"),
    ("Bus 0.00 0 -1.57 1 1 5 5 1 1 1 0 0 0 0", "line 2: unknown type 'Bus'"),
    ("Car 0.00 0 -1.57 1 1 x 5 1 1 1 0 0 0 0", "line 2: the box"),
    ("Car 0.00 0 -1.57 10 1 5 5 1 1 1 0 0 0 0", "line 2: empty or inverted box"),
    ("Car 0.00 0 -1.57 1 1 500 5 1 1 1 0 0 0 0", "line 2: box .* outside the 128x40 image"),
]


@pytest.mark.parametrize(("line", "message"), BAD_KITTI)
def test_bad_kitti_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "000001.txt"
    path.write_text("Car 0.00 0 -1.57 1 1 5 5 1 1 1 0 0 0 0\n" + line + "\n")
    with pytest.raises(EdgeslimError, match=f"000001.txt {message}"):
        parse_kitti(path, 128, 40)


BAD_YOLO = [
    ("0 0.5 0.5 0.1", "line 2: expected 5 fields"),
    ("a 0.5 0.5 0.1 0.1", "line 2: 'a 0.5 0.5 0.1 0.1' is not"),
    ("6 0.5 0.5 0.1 0.1", "line 2: class 6 is out of range 0..5"),
    ("-1 0.5 0.5 0.1 0.1", "line 2: class -1 is out of range"),
    ("1 0.98 0.5 0.2 0.1", "line 2: box .* outside the 64x48 image"),
    ("1 0.5 0.5 0 0.1", "line 2: empty or inverted box"),
]


@pytest.mark.parametrize(("line", "message"), BAD_YOLO)
def test_bad_yolo_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "img.txt"
    path.write_text("0 0.5 0.5 0.1 0.1\n" + line + "\n")
    with pytest.raises(EdgeslimError, match=f"img.txt {message}"):
        parse_yolo(path, 64, 48, 6)


def test_bad_files_through_the_data_spec(tmp_path):
    root = tmp_path / "k"
    shutil.copytree(KITTI, root)
    (root / "label_2" / "000004.txt").write_text("Car 0 0\n")
    with pytest.raises(EdgeslimError, match=r"000004.txt line 1: expected 15 fields"):
        load_dataset(f"kitti:{root}", "train")
    (root / "label_2" / "000004.txt").write_text("")
    (root / "image_2" / "000003.png").unlink()
    with pytest.raises(EdgeslimError, match=r"000003.txt: no image 000003.png"):
        load_dataset(f"kitti:{root}", "train")
    (root / "image_2" / "000003.png").write_bytes(b"not a png")
    with pytest.raises(EdgeslimError, match="cannot read image"):
        load_dataset(f"kitti:{root}", "train")
    with pytest.raises(EdgeslimError, match="no image_2"):
        dataset_info(f"kitti:{tmp_path}")
    bad = tmp_path / "d.yaml"
    bad.write_text("train: images\n")
    with pytest.raises(EdgeslimError, match="needs 'train' and 'names'"):
        dataset_info(f"yolo:{bad}")
    with pytest.raises(EdgeslimError, match="multiple of 32"):
        dataset_info(f"yolo:{YOLO},size=50")


def test_padding_is_uniform():
    ds = load_dataset(f"yolo:{YOLO},size=64", "train")
    shapes = {tuple(ds[i][1].shape) for i in range(len(ds))}
    assert len(shapes) == 1 and np.isclose(ds[3][1].numpy(), -1).all()
