"""Strong detector augmentation (mosaic, scale, colour, flip via albumentations): boxes stay
on their objects, inside the image, and a seed repeats it."""

import numpy as np
import pytest
import torch

from edgeslim.core.errors import EdgeslimError
from edgeslim.data.detection import DetectionDataset, pad_boxes

pytest.importorskip("albumentations")

SIZE = 64


def scenes(n: int = 6):
    """Grey images, each with 1-3 solid white rectangles whose boxes are the labels."""
    rng = np.random.default_rng(0)
    images, boxes = np.full((n, SIZE, SIZE, 3), 40, np.uint8), []
    for i in range(n):
        rows = []
        for _ in range(rng.integers(1, 4)):
            x1, y1 = rng.integers(0, SIZE - 16, 2)
            w, h = rng.integers(8, 16, 2)
            images[i, y1 : y1 + h, x1 : x1 + w] = 255
            rows.append([rng.integers(0, 3), x1, y1, x1 + w, y1 + h])
        boxes.append(np.array(rows, np.float32))
    return images, pad_boxes(boxes)


def test_boxes_follow_the_objects_through_mosaic_and_scale():
    images, boxes = scenes()
    ds = DetectionDataset(images, boxes, augment="strong")
    torch.manual_seed(0)
    seen = 0
    for _ in range(12):
        for i in range(len(ds)):
            x, t = ds[i]
            assert x.shape == (3, SIZE, SIZE) and x.dtype == torch.float32
            assert t.shape == (4 * boxes.shape[1], 5)  # room for a mosaic's four images
            real = t[t[:, 0] >= 0]
            assert ((real[:, 1:] >= 0) & (real[:, 1:] <= SIZE)).all()  # clipped inside
            assert (real[:, 3] > real[:, 1]).all() and (real[:, 4] > real[:, 2]).all()
            gray = x.mean(0)
            for c, x1, y1, x2, y2 in real.tolist():
                assert c in (0.0, 1.0, 2.0)
                inner = gray[int(y1) + 1 : int(y2) - 1, int(x1) + 1 : int(x2) - 1]
                if inner.numel():  # the box's inside is (mostly) the white object
                    assert float(inner.mean()) > 0.5
                seen += 1
    assert seen > 50


def test_seed_repeats_and_val_split_is_untouched():
    images, boxes = scenes()
    ds = DetectionDataset(images, boxes, augment="strong")
    torch.manual_seed(3)
    a = [ds[i] for i in range(4)]
    torch.manual_seed(3)
    b = [ds[i] for i in range(4)]
    for (xa, ta), (xb, tb) in zip(a, b, strict=True):
        torch.testing.assert_close(xa, xb)
        torch.testing.assert_close(ta, tb)
    plain = DetectionDataset(images, boxes, augment=False)
    x, t = plain[0]
    torch.testing.assert_close(t, torch.from_numpy(boxes[0]))


def test_unknown_augment_is_refused():
    images, boxes = scenes(2)
    with pytest.raises(EdgeslimError, match="choose none, flip or strong"):
        DetectionDataset(images, boxes, augment="mosaic")


def test_driving_train_split_takes_strong_augment():
    from edgeslim.data import load_dataset

    ds = load_dataset("driving:n=8,size=64", "train", augment="strong")
    assert ds.augment == "strong"
    x, t = ds[0]
    assert x.shape == (3, 64, 64) and t.shape[0] == 4 * ds.boxes.shape[1]
    assert load_dataset("driving:n=8,size=64", "val", augment="strong").augment is False
