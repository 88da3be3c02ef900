"""``coco:FILE.json``: COCO instances files on disk, checked against faster-coco-eval's parser."""

import json

import numpy as np
import pytest
from PIL import Image

from edgeslim.core.errors import EdgeslimError
from edgeslim.data import dataset_info, load_dataset
from edgeslim.data.coco_format import read_coco

W, H = 64, 48


def write_coco(root, n_images=10, annotations=None, categories=None, layout="images"):
    """``n_images`` 64x48 PNGs under ``root/images`` and ``root/annotations/instances.json``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    images = []
    for i in range(1, n_images + 1):
        name = f"{i:06d}.png"
        Image.fromarray(rng.integers(0, 255, (H, W, 3), np.uint8)).save(root / "images" / name)
        images.append({"id": i, "file_name": name, "width": W, "height": H})
    if annotations is None:
        annotations = [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [4, 6, 20, 10], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [30, 20, 30, 28], "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 7, "bbox": [0, 0, 64, 48], "iscrowd": 1},
            {"id": 4, "image_id": 9, "category_id": 3, "bbox": [10.5, 1.5, 5, 5]},
        ]
    cats = categories or [{"id": 7, "name": "person"}, {"id": 3, "name": "car"}]
    path = root / "annotations" / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": cats}))
    return path


def test_classes_boxes_and_splits(tmp_path):
    path = write_coco(tmp_path)
    info = dataset_info(f"coco:{path},size=64")
    assert info.class_names == ("car", "person") and info.task == "detection"  # id order 3, 7
    train = load_dataset(f"coco:{path},size=64", "train")
    val, test = (load_dataset(f"coco:{path},size=64", s) for s in ("val", "test"))
    assert (len(train), len(val), len(test)) == (8, 1, 1)
    _, t = train[0]
    rows = t[t[:, 0] >= 0].numpy()
    sx, sy = 64 / W, 64 / H
    want = [[0, 4 * sx, 6 * sy, 24 * sx, 16 * sy], [1, 30 * sx, 20 * sy, 60 * sx, 48 * sy]]
    np.testing.assert_allclose(rows, want, rtol=1e-5)
    _, crowd = train[1]
    assert (crowd[:, 0] < 0).all()  # the crowd region is skipped
    _, nine = val[0]  # the 9th image (index 8) goes to val
    assert nine[nine[:, 0] >= 0].shape[0] == 1


def test_boxes_agree_with_faster_coco_eval(tmp_path):
    from faster_coco_eval import COCO

    path = write_coco(tmp_path)
    ref = COCO(str(path))
    data, _, classes = read_coco(str(path))
    from edgeslim.data.coco_format import image_boxes

    ours = image_boxes(path, data, classes)
    for img_id in ref.getImgIds():
        anns = [a for a in ref.loadAnns(ref.getAnnIds(imgIds=[img_id])) if not a.get("iscrowd")]
        want = sorted(
            [classes[a["category_id"]], x, y, x + w, y + h]
            for a in anns
            for x, y, w, h in [a["bbox"]]
        )
        assert sorted(ours[img_id]) == want


BAD = [
    ({"id": 9, "image_id": 1, "category_id": 3, "bbox": [1, 1, 5]}, r"annotations\[0\]: bbox"),
    ({"id": 9, "image_id": 1, "category_id": 3, "bbox": [1, 1, "a", 2]}, r"annotations\[0\]: bbox"),
    ({"id": 9, "image_id": 1, "category_id": 5, "bbox": [1, 1, 5, 5]}, r"category_id 5 is unknown"),
    ({"id": 9, "image_id": 77, "category_id": 3, "bbox": [1, 1, 5, 5]}, r"image_id 77 is not"),
    ({"id": 9, "image_id": 1, "category_id": 3, "bbox": [60, 1, 20, 5]}, r"outside the 64x48"),
    ({"id": 9, "image_id": 1, "category_id": 3, "bbox": [1, 1, 0, 5]}, r"empty or inverted"),
    ({"id": 9, "image_id": 1, "category_id": 3, "bbox": [1, 1, float("nan"), 5]}, r"bbox must"),
]


@pytest.mark.parametrize(("ann", "message"), BAD)
def test_bad_annotations_name_the_file_and_entry(tmp_path, ann, message):
    path = write_coco(tmp_path, n_images=2, annotations=[ann])
    with pytest.raises(EdgeslimError, match=f"instances.json {message}" if "annotations" in message
                       else message) as e:  # fmt: skip
        load_dataset(f"coco:{path}", "train")
    assert "instances.json" in str(e.value) and "\n" not in str(e.value)


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(EdgeslimError, match="does not exist"):
        dataset_info(f"coco:{tmp_path / 'none.json'}")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(EdgeslimError, match="not valid JSON"):
        dataset_info(f"coco:{bad}")
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(EdgeslimError, match="needs 'images', 'annotations' and 'categories'"):
        dataset_info(f"coco:{bad}")
    path = write_coco(tmp_path / "d", n_images=9)
    (tmp_path / "d" / "images" / "000002.png").unlink()
    with pytest.raises(EdgeslimError, match="image 2: no file 000002.png"):
        load_dataset(f"coco:{path}", "train")
    Image.new("RGB", (10, 10)).save(tmp_path / "d" / "images" / "000002.png")
    with pytest.raises(EdgeslimError, match="is 10x10, the JSON says 64x48"):
        load_dataset(f"coco:{path}", "train")
