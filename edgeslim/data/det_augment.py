"""Strong augmentation for detector training, with boxes: albumentations' mosaic and friends.

YOLOv5 trains with mosaic (four images tiled around a random centre), random scale and
translation, HSV colour jitter and a horizontal flip (Jocher et al., ``hyp.scratch-low``).
edgeslim does not re-implement them: albumentations (>= 2.0: ``Mosaic``) transforms the
image and its boxes together, clips boxes at the border and drops those that lose most
of their area, which is what a hand-written version gets wrong.

Turn it on with ``augment="strong"`` (``edgeslim train --augment strong``); ``True`` keeps
the plain horizontal flip. albumentations is an optional dependency (``pip install
edgeslim[det]``); asking for ``strong`` without it is a clear error.

Randomness comes from torch's global RNG (one seed drawn per sample), so ``torch.manual_seed``
repeats an epoch exactly, as with the flip.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from edgeslim.core.errors import EdgeslimError

MIN_VISIBILITY = 0.25  # a box that keeps less of its area after cropping is dropped
MOSAIC_P = 0.5


def strong_pipeline(size: tuple[int, int]) -> Any:
    """The albumentations pipeline for ``size = (H, W)`` images, boxes ``pascal_voc`` px."""
    try:
        import albumentations as A  # noqa: N812 - the library's own convention
    except ImportError:
        raise EdgeslimError(
            "augment 'strong' (mosaic, scale, colour) needs albumentations: "
            "pip install 'edgeslim[det]'"
        ) from None
    h, w = size
    return A.Compose(
        [
            A.Mosaic(grid_yx=(2, 2), target_size=(h, w), cell_shape=(h, w), fill=114, p=MOSAIC_P),
            A.Affine(scale=(0.5, 1.5), translate_percent=(-0.1, 0.1), fill=114, p=0.8),
            A.HueSaturationValue(10, 40, 30, p=0.8),
            A.HorizontalFlip(p=0.5),
        ],
        bbox_params=A.BboxParams(
            format="pascal_voc",
            label_fields=["labels"],
            min_visibility=MIN_VISIBILITY,
            clip=True,
        ),
        seed=0,
    )


def _item(image: np.ndarray, rows: np.ndarray) -> dict:
    real = rows[rows[:, 0] >= 0]
    return {"image": image, "bboxes": real[:, 1:5], "labels": real[:, 0]}


def apply_strong(
    pipeline: Any, image: np.ndarray, rows: np.ndarray, others: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """One augmented sample: ``image`` uint8 ``H,W,3``, ``rows`` ``(M, 5)`` padded boxes, and
    ``others`` the three images (with their rows) a mosaic may tile beside it.

    Returns the new image (same size) and its real boxes ``(m, 5)``, ``[class, x1, y1, x2, y2]``.
    """
    pipeline.set_random_seed(int(torch.randint(0, 2**31 - 1, ())))
    data = _item(image, rows)
    data["mosaic_metadata"] = [_item(i, r) for i, r in others]
    out = pipeline(**data)
    boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
    labels = np.asarray(out["labels"], np.float32).reshape(-1, 1)
    keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    return out["image"], np.concatenate([labels, boxes], 1)[keep]
