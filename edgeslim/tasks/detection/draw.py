"""Detections drawn on an image: boxes, class names and scores, one colour per class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# distinct, colour-blind-friendly colours (Okabe & Ito), cycled over the classes
PALETTE = (
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
)


def draw_detections(
    image: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    names: Sequence[str] = (),
    width: int = 2,
):
    """``image`` (uint8 ``H,W,3``) with its detections drawn, as a PIL image.

    ``boxes`` are ``(K, 4)`` xyxy in the image's pixels; ``names`` the class names
    (a class without one is shown as its number).

    Example:
        >>> im = draw_detections(np.zeros((32, 32, 3), np.uint8), np.array([[4, 4, 20, 20]]),
        ...                      np.array([0.9]), np.array([1]), ("car", "truck"))
        >>> im.size, im.getpixel((4, 12)) != (0, 0, 0)
        ((32, 32), True)
    """
    from PIL import Image, ImageDraw

    out = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    pen = ImageDraw.Draw(out)
    for box, score, cls in zip(boxes, scores, classes, strict=True):
        c = int(cls)
        colour = PALETTE[c % len(PALETTE)]
        x1, y1, x2, y2 = (float(v) for v in box)
        pen.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        label = f"{names[c] if c < len(names) else c} {float(score):.2f}"
        left, top, right, bottom = pen.textbbox((x1, y1), label)
        h = bottom - top
        pen.rectangle((x1, y1 - h - 2, x1 + right - left + 2, y1), fill=colour)
        pen.text((x1 + 1, y1 - h - 2), label, fill=(0, 0, 0))
    return out
