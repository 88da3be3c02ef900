"""The vectorised numpy renderer behind :mod:`edgeslim.data.signs`.

Signs are drawn as signed-distance masks (regular polygons as the max of edge half-planes,
pictograms as unions of rectangles and triangles) evaluated on a 64x64 supersampled grid
for a whole batch at once, then box-filtered 2x2 to 32x32. Backgrounds, occluders and
degradations are drawn directly at 32x32, where anti-aliasing does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

OUT = 32  # output size, px
SS = 2  # supersampling factor for the sign layer

COLOURS = {
    "red": (0.80, 0.10, 0.10),
    "white": (0.92, 0.92, 0.90),
    "blue": (0.10, 0.30, 0.72),
    "yellow": (0.96, 0.78, 0.10),
    "black": (0.07, 0.07, 0.07),
}
RIM_WIDTH = {"red": 0.20, "white": 0.10}  # fraction of the sign radius

# Outline of each shape: (angles of the edge normals in degrees, apothem); None = circle.
SHAPES: dict[str, tuple[tuple[float, ...], float] | None] = {
    "circle": None,
    "triangle": ((-90.0, 30.0, 150.0), 0.65),
    "triangle_down": ((90.0, -30.0, -150.0), 0.65),
    "octagon": (tuple(22.5 + 45.0 * k for k in range(8)), 0.95),
    "diamond": ((45.0, 135.0, 225.0, 315.0), 0.80),
    "square": ((0.0, 90.0, 180.0, 270.0), 0.85),
}
# Pictogram placement inside each shape: (scale, vertical offset), sign-radius units.
GLYPH_FRAME = {"triangle": (0.70, -0.08), "triangle_down": (0.6, 0.1)}

# Seven-segment digits: segment -> rectangle (cx, cy, half-width, half-height), v points up.
_W, _H, _T = 0.30, 0.48, 0.12
_SEGMENTS = {
    "a": (0.0, _H, _W, _T),
    "b": (_W, _H / 2, _T, _H / 2),
    "c": (_W, -_H / 2, _T, _H / 2),
    "d": (0.0, -_H, _W, _T),
    "e": (-_W, -_H / 2, _T, _H / 2),
    "f": (-_W, _H / 2, _T, _H / 2),
    "g": (0.0, 0.0, _W, _T),
}
_DIGITS = {"3": "abcdg", "5": "afgcd", "8": "abcdefg"}


class SignSpec(Protocol):
    shape: str
    rim: str
    fill: str
    glyph: str
    ink: str


@dataclass(frozen=True)
class SignStyle:
    """Difficulty knobs of the generator; the defaults define the registered dataset."""

    radius: tuple[float, float] = (8.0, 13.0)  # sign radius, output px
    max_rotation: float = 20.0  # degrees either way
    crop_prob: float = 0.15  # chance the sign is pushed partly out of the frame
    occlusion_prob: float = 0.35  # chance of each of two occluding patches
    noise: tuple[float, float] = (0.01, 0.06)  # gaussian sigma, fraction of full scale
    blur: tuple[float, float] = (0.0, 0.25)  # side weight of a separable 3-tap blur
    clutter: int = 4  # random background shapes per image (each drawn with p=0.6)
    distractor_prob: float = 0.35  # chance of a small sign-like blob in the background


def _rect(u: np.ndarray, v: np.ndarray, cx: float, cy: float, hw: float, hh: float) -> np.ndarray:
    return (np.abs(u - cx) <= hw) & (np.abs(v - cy) <= hh)


def _arrow_left(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    shaft = (u >= -0.15) & (u <= 0.55) & (np.abs(v) <= 0.15)
    head = (u >= -0.55) & (u <= -0.05) & (np.abs(v) <= 0.9 * (u + 0.55))
    return shaft | head


def glyph_mask(glyph: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Pictogram ``glyph`` as a boolean mask; glyph units span about [-0.6, 0.6]."""
    if glyph in _DIGITS:
        mask = np.zeros(u.shape, dtype=bool)
        for seg in _DIGITS[glyph]:
            mask |= _rect(u, v, *_SEGMENTS[seg])
        return mask
    if glyph == "arrow_left":
        return _arrow_left(u, v)
    if glyph == "arrow_right":
        return _arrow_left(-u, v)
    if glyph == "arrow_up":
        return _arrow_left(-v, u)
    if glyph == "bar":
        return _rect(u, v, 0.0, 0.0, 0.6, 0.15)
    if glyph == "text":  # "STOP": four letter blocks in a row
        return _rect(u, v, 0.0, 0.0, 0.62, 0.17) & (((u + 0.62) / 0.31) % 1.0 < 0.72)
    if glyph == "exclamation":
        return _rect(u, v, 0.0, 0.15, 0.09, 0.33) | (u**2 + (v + 0.38) ** 2 <= 0.1**2)
    if glyph == "P":
        r2 = u**2 + (v - 0.17) ** 2
        bowl = (r2 <= 0.3**2) & (r2 >= 0.1**2) & (u >= -0.2)
        return _rect(u, v, -0.2, 0.0, 0.12, 0.47) | bowl
    if glyph == "cross":
        return ((np.abs(u + v) <= 0.14) | (np.abs(u - v) <= 0.14)) & (u**2 + v**2 <= 0.75**2)
    if glyph == "":
        return np.zeros(u.shape, dtype=bool)
    raise ValueError(f"unknown glyph {glyph!r}")


def shape_sdf(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (<0 inside) to the outline of ``shape`` of radius about 1."""
    outline = SHAPES[shape]
    if outline is None:
        return np.sqrt(u * u + v * v) - 1.0
    angles, apothem = outline
    d = None
    for a in np.deg2rad(angles):
        e = u * np.float32(np.cos(a)) + v * np.float32(np.sin(a))
        d = e if d is None else np.maximum(d, e)
    return d - apothem


def _materials(spec: SignSpec, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """0 outside, 1 rim, 2 fill, 3 pictogram: one uint8 per supersampled pixel."""
    sdf = shape_sdf(spec.shape, u, v)
    fill = sdf <= -RIM_WIDTH.get(spec.rim, 0.0)
    scale, dv = GLYPH_FRAME.get(spec.shape, (1.0, 0.0))
    ink = glyph_mask(spec.glyph, u / scale, (v - dv) / scale) & fill
    return (sdf <= 0).astype(np.uint8) + fill + ink


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(n, dtype=np.float32) + 0.5) * (OUT / n)
    return c[None, None, :], c[None, :, None]  # x (cols), y (rows), in output px


def _smooth_noise(rng: np.random.Generator, m: int, cells: int, amp: float) -> np.ndarray:
    coarse = torch.from_numpy(rng.normal(0.0, amp, (m, 3, cells, cells)).astype(np.float32))
    fine = F.interpolate(coarse, size=(OUT, OUT), mode="bicubic", align_corners=False)
    return fine.permute(0, 2, 3, 1).numpy()


def _blobs(
    rng: np.random.Generator, cx: np.ndarray, cy: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Random axis-aligned rectangles or ellipses centred at ``cx, cy`` (px): m,32,32 masks.

    Half-extents are drawn uniformly in ``[lo, hi)`` per sample and axis.
    """
    x, y = _grid(OUT)
    m = len(cx)
    a, b = rng.uniform(lo, hi, (2, m)).astype(np.float32)[..., None, None]
    ellipse = rng.random((m, 1, 1)) < 0.5
    dx = np.abs(x - cx[:, None, None]) / a
    dy = np.abs(y - cy[:, None, None]) / b
    return np.where(ellipse, dx * dx + dy * dy <= 1.0, (dx <= 1.0) & (dy <= 1.0))


def _background(rng: np.random.Generator, m: int, style: SignStyle) -> np.ndarray:
    x, y = _grid(OUT)
    c0, c1 = rng.uniform(0.05, 0.95, (2, m, 1, 1, 3)).astype(np.float32)
    phi = rng.uniform(0, 2 * np.pi, (m, 1, 1)).astype(np.float32)
    steep = rng.uniform(0.3, 2.0, (m, 1, 1)).astype(np.float32)
    proj = (x - OUT / 2) * np.cos(phi) + (y - OUT / 2) * np.sin(phi)
    t = np.clip(0.5 + proj / OUT * steep, 0.0, 1.0)[..., None]
    bg = c0 + (c1 - c0) * t + _smooth_noise(rng, m, 6, 0.1)
    period = rng.uniform(3.0, 9.0, (m, 1, 1)).astype(np.float32)
    stripes = np.sin(2 * np.pi * proj / period) > 0
    stripes &= rng.random((m, 1, 1)) < 0.3
    bg = np.where(stripes[..., None], rng.uniform(0, 1, (m, 1, 1, 3)).astype(np.float32), bg)
    for _ in range(style.clutter):
        cx, cy = rng.uniform(0, OUT, (2, m)).astype(np.float32)
        mask = _blobs(rng, cx, cy, np.float32(1.5), np.float32(8.0))
        mask &= rng.random((m, 1, 1)) < 0.6
        bg = np.where(mask[..., None], rng.uniform(0, 1, (m, 1, 1, 3)).astype(np.float32), bg)
    # A sign-like distractor: a disc in a sign colour with a pale or dark core.
    cols = np.array([COLOURS[k] for k in ("red", "blue", "yellow", "white")], np.float32)
    cx, cy = rng.uniform(0, OUT, (2, m, 1, 1)).astype(np.float32)
    rad = rng.uniform(3.0, 7.0, (m, 1, 1)).astype(np.float32)
    r = np.sqrt((x - cx) ** 2 + (y - cy) ** 2) / rad
    on = rng.random((m, 1, 1)) < style.distractor_prob
    outer = cols[rng.integers(0, 4, m)][:, None, None, :]
    inner = cols[rng.integers(0, 4, m)][:, None, None, :]
    bg = np.where(((r <= 1.0) & on)[..., None], np.where(r[..., None] <= 0.7, inner, outer), bg)
    return bg


def _pose(rng: np.random.Generator, m: int, style: SignStyle):
    """Per-sample centre (px), radius (px) and the 2x2 map from image to sign frame."""
    r = rng.uniform(*style.radius, m).astype(np.float32)
    cx, cy = (OUT / 2 + rng.uniform(-3.0, 3.0, (2, m))).astype(np.float32)
    push = rng.random(m) < style.crop_prob
    ang = rng.uniform(0, 2 * np.pi, m)
    dist = np.where(push, r * rng.uniform(0.5, 0.9, m) + OUT / 2 - r, 0.0)
    cx, cy = cx + dist * np.cos(ang), cy + dist * np.sin(ang)
    theta = np.deg2rad(rng.uniform(-style.max_rotation, style.max_rotation, m))
    squash = rng.uniform(0.75, 1.0, m)  # sign seen at an angle
    shear = rng.uniform(-0.15, 0.15, m)
    cos, sin = np.cos(theta), np.sin(theta)
    # forward A = R @ diag(squash, 1) @ [[1, shear], [0, 1]]; we need A^-1 (closed form).
    a00, a01, a10, a11 = (
        cos * squash,
        cos * squash * shear - sin,
        sin * squash,
        sin * squash * shear + cos,
    )
    det = a00 * a11 - a01 * a10
    inv = np.stack([a11, -a01, -a10, a00]) / det
    return cx.astype(np.float32), cy.astype(np.float32), r, inv.astype(np.float32)


def _downsample(mask: np.ndarray) -> np.ndarray:
    """Mean of each SSxSS block of an ``m,OUT*SS,OUT*SS`` mask: coverage in [0, 1]."""
    mask = mask.view(np.uint8)
    total = sum(mask[:, i::SS, j::SS] for i in range(SS) for j in range(SS))
    return total.astype(np.float32) * np.float32(1.0 / (SS * SS))


def _blur(img: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable [w, 1-2w, w] blur with per-sample ``w`` and edge replication."""
    for axis in (1, 2):
        p = np.pad(
            img,
            [(0, 0)] + [(1, 1) if a == axis else (0, 0) for a in (1, 2)] + [(0, 0)],
            mode="edge",
        )
        lo = p.take(range(0, OUT), axis=axis)
        hi = p.take(range(2, OUT + 2), axis=axis)
        img = img * (1 - 2 * w) + (lo + hi) * w
    return img


def render_signs(
    classes: Sequence[SignSpec], labels: np.ndarray, rng: np.random.Generator, style: SignStyle
) -> np.ndarray:
    """Render one batch: uint8 ``len(labels),32,32,3``. Consumes ``rng`` in a fixed order."""
    m = len(labels)
    bg = _background(rng, m, style)
    cx, cy, r, inv = _pose(rng, m, style)
    x, y = _grid(OUT)
    pole = (np.abs(x - cx[:, None, None]) <= rng.uniform(0.5, 1.3, (m, 1, 1))) & (
        y >= cy[:, None, None]
    )
    pole &= rng.random((m, 1, 1)) < 0.5
    grey = rng.uniform(0.3, 0.7, (m, 1, 1, 1)).astype(np.float32)
    bg = np.where(pole[..., None], grey, bg)

    # Sign layer on the supersampled grid: a material index per pixel, then a palette lookup.
    xs, ys = _grid(OUT * SS)
    dx = (xs - cx[:, None, None]) / r[:, None, None]
    dy = (cy[:, None, None] - ys) / r[:, None, None]  # v points up
    u = inv[0, :, None, None] * dx + inv[1, :, None, None] * dy
    v = inv[2, :, None, None] * dx + inv[3, :, None, None] * dy
    mat = np.zeros(u.shape, dtype=np.uint8)
    palette = np.zeros((m, 4, 3), dtype=np.float32)
    for k, spec in enumerate(classes):
        idx = np.flatnonzero(labels == k)
        if idx.size:
            mat[idx] = _materials(spec, u[idx], v[idx])
            palette[idx, 1] = COLOURS[spec.rim or spec.fill]
            palette[idx, 2] = COLOURS[spec.fill]
            palette[idx, 3] = COLOURS[spec.ink]
    # Faded paint and a per-sign tint, then uneven light across the sign.
    fade = rng.uniform(0.0, 0.35, (m, 1, 1))
    palette = palette * (1 - fade) + fade * 0.5
    palette *= rng.uniform(0.85, 1.15, (m, 1, 3))
    # Box-filter each material's coverage down to 32x32, then mix the palette by coverage.
    cover = [_downsample(mat == k) for k in (1, 2, 3)]
    colour = sum(c[..., None] * palette[:, None, None, k + 1] for k, c in enumerate(cover))
    alpha = sum(cover)[..., None]
    light = rng.uniform(0.55, 1.2, (m, 1, 1)) + rng.uniform(-0.3, 0.3, (m, 1, 1)) * (
        (x - cx[:, None, None]) / r[:, None, None]
    )
    img = bg * (1 - alpha) + colour * light[..., None].astype(np.float32)

    # Occluders near the sign (leaves, other vehicles, stickers).
    for _ in range(2):
        ox, oy = (c + r * rng.uniform(-1.0, 1.0, m).astype(np.float32) for c in (cx, cy))
        mask = _blobs(rng, ox, oy, 0.2 * r, 0.6 * r)
        mask &= rng.random((m, 1, 1)) < style.occlusion_prob
        fill = rng.uniform(0, 1, (m, 1, 1, 3)).astype(np.float32)
        img = np.where(mask[..., None], fill, img)

    # Camera: white balance, contrast, brightness, blur, noise.
    img *= rng.uniform(0.9, 1.1, (m, 1, 1, 3)).astype(np.float32)
    mean = img.mean((1, 2, 3), keepdims=True)
    img = (img - mean) * rng.uniform(0.5, 1.2, (m, 1, 1, 1)) + mean
    img *= rng.uniform(0.6, 1.3, (m, 1, 1, 1))
    img = _blur(img.astype(np.float32), rng.uniform(*style.blur, (m, 1, 1, 1)).astype(np.float32))
    img += rng.normal(0.0, 1.0, img.shape).astype(np.float32) * rng.uniform(
        *style.noise, (m, 1, 1, 1)
    ).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
