"""YOLO-format datasets on disk: ``yolo:FILE.yaml`` (or ``yolo:FILE.yaml,size=N``).

The data YAML is Ultralytics' (https://docs.ultralytics.com/datasets/detect/)::

    path: ../my_data       # optional root; relative to the YAML's folder
    train: images/train    # a folder of images (relative to path)
    val: images/val
    test: images/test      # optional
    names: [car, person]   # or {0: car, 1: person}

Each image ``.../images/<split>/<name>.png`` has its labels in
``.../labels/<split>/<name>.txt`` (the last ``images`` folder of the path swapped for
``labels``), one object per line: ``class cx cy w h``, the box normalized to [0, 1] by
the image's width and height. A missing or empty label file is an image without
objects (Ultralytics' convention for background images). A malformed line, a class out
of range or a box outside the image is an :class:`EdgeslimError` naming the file and
line. Images are resized to ``size x size`` (default 256), boxes with them.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import yaml

from edgeslim.core.errors import EdgeslimError
from edgeslim.data.detection import (
    IMAGE_EXTENSIONS,
    DetectionDataset,
    check_box,
    pad_boxes,
    read_image,
    resized,
    split_path_option,
)
from edgeslim.data.registry import DATASETS, DatasetInfo, DataSource

DEFAULT_SIZE = 256
TOLERANCE = 1e-3  # normalized coordinates may overshoot [0, 1] by this much (rounding)


@functools.lru_cache(maxsize=8)
def read_data_yaml(path: str) -> tuple[Path, dict, tuple[str, ...]]:
    """``(root, config, class names)`` of a data YAML, checked."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise EdgeslimError(f"YOLO data file {p} does not exist")
    try:
        cfg = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise EdgeslimError(f"{p} is not valid YAML: {e}") from None
    if not isinstance(cfg, dict) or "names" not in cfg or "train" not in cfg:
        raise EdgeslimError(f"{p}: a YOLO data file needs 'train' and 'names' keys")
    names = cfg["names"]
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise EdgeslimError(f"{p}: 'names' keys must be 0..{len(names) - 1}")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names:
        raise EdgeslimError(f"{p}: 'names' must be a non-empty list or a dict of class names")
    root = p.parent / str(cfg.get("path", "."))
    return root, cfg, tuple(str(n) for n in names)


def label_path(image: Path) -> Path:
    """``.../images/x/name.png`` -> ``.../labels/x/name.txt`` (the last ``images`` part)."""
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")  # no images/ folder: labels beside the images


def parse_label_file(path: Path, width: int, height: int, num_classes: int) -> np.ndarray:
    """One YOLO label file as ``(m, 5)`` rows ``[class, x1, y1, x2, y2]`` in pixels."""
    rows = []
    if not path.is_file():
        return np.zeros((0, 5), np.float32)
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path} line {n}"
        if len(fields) != 5:
            raise EdgeslimError(
                f"{where}: expected 5 fields 'class cx cy w h', got {len(fields)} "
                "(segment polygons are not supported)"
            )
        try:
            cls = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            raise EdgeslimError(f"{where}: {line.strip()!r} is not 'class cx cy w h'") from None
        if not 0 <= cls < num_classes:
            raise EdgeslimError(f"{where}: class {cls} is out of range 0..{num_classes - 1}")
        box = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width,
               (cy + h / 2) * height]  # fmt: skip
        check_box(box, width, height, where, tolerance=TOLERANCE * max(width, height))
        x1, y1, x2, y2 = box
        rows.append([cls, max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)])
    return np.asarray(rows, np.float32).reshape(-1, 5)


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise EdgeslimError(f"YOLO image folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise EdgeslimError(f"no images in {folder}")
    return files


@functools.lru_cache(maxsize=8)
def _load_split(yaml_path: str, split: str, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    root, cfg, names = read_data_yaml(yaml_path)
    if not cfg.get(split):
        raise EdgeslimError(f"{yaml_path}: no '{split}' split")
    images, boxes = [], []
    for f in _images(root / str(cfg[split])):
        img = read_image(f)
        b = parse_label_file(label_path(f), img.shape[1], img.shape[0], len(names))
        img, b = resized(img, b, size)
        images.append(img)
        boxes.append(b)
    return np.stack(images), boxes


def _load(arg: str, split: str, augment: bool | str) -> DetectionDataset:
    path, size = split_path_option(arg, DEFAULT_SIZE)
    images, boxes = _load_split(str(Path(path).expanduser().resolve()), split, size)
    return DetectionDataset(images, pad_boxes(boxes), augment if split == "train" else False)


def _info(arg: str) -> DatasetInfo:
    path, size = split_path_option(arg, DEFAULT_SIZE)
    _, _, names = read_data_yaml(str(Path(path).expanduser().resolve()))
    return DatasetInfo(len(names), (3, size, size), names, task="detection")


DATASETS.register("yolo", DataSource(load=_load, info=_info, needs_arg=True))
