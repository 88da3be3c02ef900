"""KITTI object labels on disk: ``kitti:DIR`` (or ``kitti:DIR,size=N``).

``DIR`` holds ``image_2/<id>.png`` and ``label_2/<id>.txt`` (or KITTI's own
``DIR/training/image_2`` and ``DIR/training/label_2``). Each label line is KITTI's
(Geiger, Lenz, Urtasun, "Are we ready for autonomous driving? The KITTI vision benchmark
suite", CVPR 2012; devkit ``readme.txt``)::

    type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y [score]

of which edgeslim uses ``type`` and the 2D box (pixels). ``DontCare`` lines mark regions
with unlabelled objects: they are skipped (no target, no penalty is taken for it; the
COCO evaluation here has no ignore regions, so a detection there counts as a false
positive). An empty label file is an image without objects. A malformed line, an unknown
type or a box outside the image is an :class:`EdgeslimError` naming the file and line.

KITTI has no validation split: the sorted ids are split deterministically, every 10th
(from the 9th) to ``val`` and every 10th (from the 10th) to ``test``, the rest to
``train``. Images are resized to ``size x size`` (default 256), boxes with them.
"""

from __future__ import annotations

import functools
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

KITTI_CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc")
IGNORED = "DontCare"
DEFAULT_SIZE = 256


def _folders(root: Path) -> tuple[Path, Path]:
    for base in (root, root / "training"):
        if (base / "image_2").is_dir() and (base / "label_2").is_dir():
            return base / "image_2", base / "label_2"
    raise EdgeslimError(f"{root} has no image_2/ and label_2/ folders (nor training/image_2)")


def parse_label_file(path: Path, width: int, height: int) -> np.ndarray:
    """One KITTI label file as ``(m, 5)`` rows ``[class, x1, y1, x2, y2]`` (pixels).

    Example:
        >>> # parse_label_file(Path("label_2/000000.txt"), 1242, 375)
    """
    rows = []
    text = path.read_text(encoding="utf-8", errors="replace")
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path} line {n}"
        if len(fields) not in (15, 16):
            raise EdgeslimError(
                f"{where}: expected 15 fields (type truncated occluded alpha x1 y1 x2 y2 "
                f"h w l x y z rotation_y), got {len(fields)}"
            )
        kind = fields[0]
        if kind == IGNORED:
            continue
        if kind not in KITTI_CLASSES:
            raise EdgeslimError(
                f"{where}: unknown type {kind!r}; KITTI's are {', '.join(KITTI_CLASSES)}, {IGNORED}"
            )
        try:
            box = [float(v) for v in fields[4:8]]
        except ValueError:
            raise EdgeslimError(f"{where}: the box {fields[4:8]} is not four numbers") from None
        check_box(box, width, height, where)
        x1, y1, x2, y2 = box
        rows.append(
            [KITTI_CLASSES.index(kind), max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)]
        )
    return np.asarray(rows, np.float32).reshape(-1, 5)


def _split_of(i: int) -> str:
    return {8: "val", 9: "test"}.get(i % 10, "train")


@functools.lru_cache(maxsize=4)
def _load_all(root: str, size: int) -> dict[str, tuple[np.ndarray, list[np.ndarray]]]:
    images_dir, labels_dir = _folders(Path(root).expanduser())
    labels = sorted(labels_dir.glob("*.txt"))
    if not labels:
        raise EdgeslimError(f"no label files in {labels_dir}")
    out: dict[str, tuple[list, list]] = {"train": ([], []), "val": ([], []), "test": ([], [])}
    for i, lab in enumerate(labels):
        img_path = next(
            (p for p in (images_dir / f"{lab.stem}{e}" for e in (".png", ".jpg")) if p.is_file()),
            None,
        )
        if img_path is None:
            raise EdgeslimError(f"{lab}: no image {lab.stem}.png (or .jpg) in {images_dir}")
        img = read_image(img_path)
        boxes = parse_label_file(lab, img.shape[1], img.shape[0])
        img, boxes = resized(img, boxes, size)
        imgs, bs = out[_split_of(i)]
        imgs.append(img)
        bs.append(boxes)
    return {s: (np.stack(v[0]) if v[0] else np.zeros((0, size, size, 3), np.uint8), v[1])
            for s, v in out.items()}  # fmt: skip


def _load(arg: str, split: str, augment: bool | str) -> DetectionDataset:
    root, size = split_path_option(arg, DEFAULT_SIZE)
    splits = _load_all(str(Path(root).expanduser().resolve()), size)
    rows = max(max((len(b) for b in bs), default=0) for _, bs in splits.values())
    images, boxes = splits[split]
    return DetectionDataset(
        images, pad_boxes(boxes, max(rows, 1)), augment if split == "train" else False
    )


def _info(arg: str) -> DatasetInfo:
    root, size = split_path_option(arg, DEFAULT_SIZE)
    _folders(Path(root).expanduser())
    return DatasetInfo(len(KITTI_CLASSES), (3, size, size), KITTI_CLASSES, task="detection")


DATASETS.register("kitti", DataSource(load=_load, info=_info, needs_arg=True))
