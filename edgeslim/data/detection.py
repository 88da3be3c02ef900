"""Detection samples: an image and its boxes, padded to a fixed row count.

Every detection source (the generated ``driving`` scenes, ``kitti:DIR``, ``yolo:FILE``)
yields ``(image, targets)`` where ``image`` is a float32 ``3,H,W`` tensor in [0, 1]
(YOLOv5's input convention: no mean or std) and ``targets`` a float32 ``(M, 5)`` tensor
of rows ``[class, x1, y1, x2, y2]`` in input pixels. ``M`` is the same for every sample
of a dataset (its largest box count), the unused rows are :data:`PAD_CLASS`, so that
the stock ``default_collate`` stacks a batch into ``(N, M, 5)``; the ``detection``
task's collate then drops the all-padding columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from edgeslim.core.errors import EdgeslimError

PAD_CLASS = -1.0  # class of a padding row


def pad_boxes(boxes: Sequence[np.ndarray], rows: int | None = None) -> np.ndarray:
    """Per-image ``(m_i, 5)`` arrays as one ``(N, M, 5)`` float32 array, padded with -1.

    Example:
        >>> pad_boxes([np.zeros((1, 5)), np.zeros((0, 5))]).shape
        (2, 1, 5)
    """
    m = max([len(b) for b in boxes] + [1]) if rows is None else rows
    out = np.full((len(boxes), m, 5), PAD_CLASS, np.float32)
    for i, b in enumerate(boxes):
        if len(b) > m:
            raise EdgeslimError(f"image {i} has {len(b)} boxes, more than the {m} rows allowed")
        out[i, : len(b)] = b
    return out


class DetectionDataset(Dataset):
    """``(float32 image 3,H,W in [0, 1], float32 targets (M, 5))`` from arrays.

    Args:
        images: ``N,H,W,3`` uint8 (may be a memory map) or a sequence of ``H,W,3`` arrays
            of one size.
        boxes: ``(N, M, 5)`` padded rows ``[class, x1, y1, x2, y2]`` (see :func:`pad_boxes`).
        augment: ``True``: mirror left-right with probability 1/2 on access, boxes
            included (torch's global RNG, so seeding repeats it); ``"strong"``: YOLOv5's
            mosaic, scale, colour and flip through albumentations
            (:mod:`edgeslim.data.det_augment`); a sample then has up to 4x the rows.

    Example:
        >>> ds = DetectionDataset(np.zeros((1, 8, 8, 3), np.uint8), pad_boxes([np.ones((1, 5))]))
        >>> [tuple(t.shape) for t in ds[0]]
        [(3, 8, 8), (1, 5)]
    """

    def __init__(self, images, boxes: np.ndarray, augment: bool | str = False) -> None:
        if len(images) != len(boxes):
            raise EdgeslimError(f"{len(images)} images but {len(boxes)} label sets")
        if augment not in (True, False, "strong", "flip", "none"):
            raise EdgeslimError(f"augment {augment!r}: choose none, flip or strong")
        self.images, self.boxes = images, np.asarray(boxes, np.float32)
        self.augment = {"flip": True, "none": False}.get(augment, augment)  # type: ignore[arg-type]
        self._pipeline = None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.augment == "strong":
            return self._strong(i)
        img = torch.from_numpy(np.array(self.images[i])).permute(2, 0, 1)  # copy: may be a memmap
        x = img.float().div_(255.0)
        t = torch.from_numpy(self.boxes[i].copy())
        if self.augment and torch.rand(()) < 0.5:
            w = x.shape[-1]
            x = x.flip(-1)
            real = t[:, 0] >= 0
            t[real, 1], t[real, 3] = w - t[real, 3], w - t[real, 1]
        return x, t

    def _strong(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        from edgeslim.data.det_augment import apply_strong, strong_pipeline

        image = np.array(self.images[i])
        if self._pipeline is None:
            self._pipeline = strong_pipeline(image.shape[:2])
        picks = torch.randint(0, len(self), (3,)).tolist()
        others = [(np.array(self.images[j]), self.boxes[j]) for j in picks]
        out, rows = apply_strong(self._pipeline, image, self.boxes[i], others)
        m = 4 * self.boxes.shape[1]  # a mosaic holds up to four images' boxes
        if len(rows) > m:  # keep the largest (cannot happen unless a box was split)
            area = (rows[:, 3] - rows[:, 1]) * (rows[:, 4] - rows[:, 2])
            rows = rows[np.argsort(-area)[:m]]
        t = torch.from_numpy(pad_boxes([rows], m)[0])
        x = torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1).float().div_(255.0)
        return x, t


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def split_path_option(arg: str, default_size: int) -> tuple[str, int]:
    """``"PATH"`` or ``"PATH,size=N"`` -> ``(PATH, N)``: the side images are resized to.

    Example:
        >>> split_path_option("data/kitti,size=128", 256)
        ('data/kitti', 128)
    """
    path, sep, size = arg.rpartition(",size=")
    if not sep:
        return arg, default_size
    if not size.isdigit() or int(size) < 32 or int(size) % 32:
        raise EdgeslimError(f"size must be a multiple of 32 (>= 32), got {size!r} in {arg!r}")
    return path, int(size)


def read_image(path: Path) -> np.ndarray:
    """An image file as uint8 ``H,W,3`` RGB; a clear error when it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as e:
        raise EdgeslimError(f"cannot read image {path}: {e}") from None


def resized(image: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``image`` stretched to ``size x size`` (bilinear) and its ``(m, 5)`` boxes scaled to match.

    The aspect ratio is not kept: every image of a dataset must share one input shape.
    """
    from PIL import Image

    h, w = image.shape[:2]
    out = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    b = boxes.astype(np.float32).copy()
    b[:, [1, 3]] *= size / w
    b[:, [2, 4]] *= size / h
    return out, b


def check_box(
    box: Sequence[float], width: int, height: int, where: str, tolerance: float = 1.0
) -> None:
    """``x1 < x2``, ``y1 < y2`` and inside the image (``tolerance`` px), else a clear error."""
    x1, y1, x2, y2 = box
    if not (x1 < x2 and y1 < y2):
        raise EdgeslimError(f"{where}: empty or inverted box ({x1}, {y1}, {x2}, {y2})")
    if x1 < -tolerance or y1 < -tolerance or x2 > width + tolerance or y2 > height + tolerance:
        raise EdgeslimError(
            f"{where}: box ({x1}, {y1}, {x2}, {y2}) lies outside the {width}x{height} image"
        )
