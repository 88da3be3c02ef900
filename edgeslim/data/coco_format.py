"""COCO-format detection data on disk: ``coco:FILE.json`` (or ``coco:FILE.json,size=N``).

``FILE.json`` is a COCO *instances* file (https://cocodataset.org/#format-data)::

    {"images": [{"id": 1, "file_name": "000001.png", "width": 640, "height": 480}, ...],
     "annotations": [{"id": 7, "image_id": 1, "category_id": 3, "bbox": [x, y, w, h],
                      "iscrowd": 0}, ...],
     "categories": [{"id": 3, "name": "car"}, ...]}

Image files are found by ``file_name`` relative to the JSON's folder, else its
``images/`` subfolder, else the ``images/`` folder beside it (COCO's own
``annotations/`` + ``images/`` layout). Category ids (COCO's have gaps) map to classes
``0..C-1`` in id order; the class names are the categories' names. ``iscrowd``
annotations mark groups COCO's evaluation ignores: they are skipped, like KITTI's
DontCare. An image without annotations has no objects.

A file holds one set of images; like KITTI's, its images (sorted by id) are split
deterministically: every 10th (from the 9th) to ``val``, every 10th (from the 10th) to
``test``, the rest to ``train``. A malformed entry (a box that is not four numbers, an
empty or inverted box or one outside its image, an unknown image or category id, a
declared size that differs from the file) is an :class:`EdgeslimError` naming the file
and the entry, e.g. ``instances.json annotations[12]``. Images are resized to
``size x size`` (default 256), boxes with them.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np

from edgeslim.core.errors import EdgeslimError
from edgeslim.data.detection import (
    DetectionDataset,
    check_box,
    pad_boxes,
    read_image,
    resized,
    split_path_option,
)
from edgeslim.data.registry import DATASETS, DatasetInfo, DataSource

DEFAULT_SIZE = 256


@functools.lru_cache(maxsize=8)
def read_coco(path: str) -> tuple[dict, tuple[str, ...], dict[int, int]]:
    """``(the JSON, class names, category id -> class)`` of a COCO file, checked at the top."""
    p = Path(path)
    if not p.is_file():
        raise EdgeslimError(f"COCO annotation file {p} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgeslimError(f"{p} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise EdgeslimError(
            f"{p}: a COCO file needs 'images', 'annotations' and 'categories' lists"
        )
    cats = {}
    for i, c in enumerate(data["categories"]):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or "name" not in c:
            raise EdgeslimError(f"{p} categories[{i}]: needs an integer 'id' and a 'name'")
        if c["id"] in cats:
            raise EdgeslimError(f"{p} categories[{i}]: category id {c['id']} appears twice")
        cats[c["id"]] = str(c["name"])
    if not cats:
        raise EdgeslimError(f"{p}: no categories")
    ids = sorted(cats)
    return data, tuple(cats[i] for i in ids), {cid: k for k, cid in enumerate(ids)}


def _image_root(json_path: Path, file_name: str) -> Path | None:
    for root in (json_path.parent, json_path.parent / "images", json_path.parent.parent / "images"):
        if (root / file_name).is_file():
            return root / file_name
    return None


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def image_boxes(path: Path, data: dict, classes: dict[int, int]) -> dict[int, list]:
    """Per image id, its rows ``[class, x1, y1, x2, y2]`` in the declared image's pixels."""
    images = {}
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not isinstance(im.get("id"), int):
            raise EdgeslimError(f"{path} images[{i}]: needs an integer 'id'")
        if not isinstance(im.get("file_name"), str) or not im["file_name"]:
            raise EdgeslimError(f"{path} images[{i}]: needs a 'file_name'")
        if im["id"] in images:
            raise EdgeslimError(f"{path} images[{i}]: image id {im['id']} appears twice")
        images[im["id"]] = im
    rows: dict[int, list] = {k: [] for k in images}
    for i, a in enumerate(data["annotations"]):
        where = f"{path} annotations[{i}]"
        if not isinstance(a, dict):
            raise EdgeslimError(f"{where}: not an object")
        image_id, category_id = a.get("image_id"), a.get("category_id")
        if not isinstance(image_id, int) or image_id not in images:
            raise EdgeslimError(f"{where}: image_id {image_id!r} is not in 'images'")
        if not isinstance(category_id, int) or category_id not in classes:
            raise EdgeslimError(f"{where}: category_id {category_id!r} is unknown")
        crowd = a.get("iscrowd", 0)
        if crowd not in (0, 1):  # True/False compare equal to 1/0
            raise EdgeslimError(f"{where}: iscrowd must be 0 or 1, got {crowd!r}")
        if crowd:
            continue  # COCO's crowd regions: ignored by its evaluation, skipped here
        box = a.get("bbox")
        if not isinstance(box, list) or len(box) != 4 or not all(map(_number, box)):
            raise EdgeslimError(f"{where}: bbox must be four numbers [x, y, w, h], got {box!r}")
        x, y, w, h = (float(v) for v in box)
        im = images[a["image_id"]]
        width, height = im.get("width"), im.get("height")
        if not (_number(width) and _number(height) and width > 0 and height > 0):
            raise EdgeslimError(f"{path} image {im['id']}: needs a positive 'width' and 'height'")
        check_box([x, y, x + w, y + h], int(width), int(height), where)
        rows[a["image_id"]].append(
            [classes[a["category_id"]], max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)]
        )
    return rows


def _split_of(i: int) -> str:
    return {8: "val", 9: "test"}.get(i % 10, "train")


@functools.lru_cache(maxsize=4)
def _load_all(json_path: str, size: int) -> dict[str, tuple[np.ndarray, list[np.ndarray]]]:
    path = Path(json_path)
    data, _, classes = read_coco(json_path)
    rows = image_boxes(path, data, classes)
    images = sorted(data["images"], key=lambda im: im["id"])
    if not images:
        raise EdgeslimError(f"{path}: no images")
    out: dict[str, tuple[list, list]] = {"train": ([], []), "val": ([], []), "test": ([], [])}
    for i, im in enumerate(images):
        file = _image_root(path, im["file_name"])
        if file is None:
            raise EdgeslimError(
                f"{path} image {im['id']}: no file {im['file_name']} beside the JSON or in images/"
            )
        img = read_image(file)
        if (img.shape[1], img.shape[0]) != (int(im["width"]), int(im["height"])):
            raise EdgeslimError(
                f"{path} image {im['id']}: {im['file_name']} is {img.shape[1]}x{img.shape[0]}, "
                f"the JSON says {im['width']}x{im['height']}"
            )
        boxes = np.asarray(rows[im["id"]], np.float32).reshape(-1, 5)
        img, boxes = resized(img, boxes, size)
        imgs, bs = out[_split_of(i)]
        imgs.append(img)
        bs.append(boxes)
    return {s: (np.stack(v[0]) if v[0] else np.zeros((0, size, size, 3), np.uint8), v[1])
            for s, v in out.items()}  # fmt: skip


def _resolve(arg: str) -> tuple[str, int]:
    path, size = split_path_option(arg, DEFAULT_SIZE)
    return str(Path(path).expanduser().resolve()), size


def _load(arg: str, split: str, augment: bool | str) -> DetectionDataset:
    path, size = _resolve(arg)
    splits = _load_all(path, size)
    rows = max(max((len(b) for b in bs), default=0) for _, bs in splits.values())
    images, boxes = splits[split]
    return DetectionDataset(
        images, pad_boxes(boxes, max(rows, 1)), augment if split == "train" else False
    )


def _info(arg: str) -> DatasetInfo:
    path, size = _resolve(arg)
    _, names, _ = read_coco(path)
    return DatasetInfo(len(names), (3, size, size), names, task="detection")


DATASETS.register("coco", DataSource(load=_load, info=_info, needs_arg=True))
