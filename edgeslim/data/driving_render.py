"""The numpy renderer behind :mod:`edgeslim.data.driving`: one road scene per call.

Geometry is a pinhole camera at height ``CAMERA_HEIGHT`` over flat ground: a ground
point ``y`` px below the horizon lies at depth ``z = f * CAMERA_HEIGHT / y``, so an
object standing there measures ``size_m * y / CAMERA_HEIGHT`` px. Every object is placed
in metres (lane, kerb, pavement) and drawn at the scale its depth gives it, far to near,
so nearer objects occlude farther ones; objects that leave the frame are truncated.

The image is built from two layers: albedo (lit by the scene's ambient light and tint:
day, dusk or night) and emission (tail lights, traffic lights, street lamps), which
night does not dim. Fog blends towards a haze colour with depth; rain adds streaks;
sensor noise grows as the light falls.

A box is the object's full extent clipped to the image (KITTI's convention), in pixel
``x1, y1, x2, y2``; objects with less than 25% of their pixels visible (occluded or
outside the frame) or under 3 px tall are left unlabelled, as KITTI leaves them DontCare.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CAMERA_HEIGHT = 1.6  # m
MIN_VISIBLE = 0.25  # fraction of an object's pixels that must show for a label
MIN_HEIGHT = 3.0  # px

# class id -> (width m, height m, elevation of the bottom edge m)
CAR, TRUCK, PEDESTRIAN, CYCLIST, SIGN, LIGHT = range(6)
SIZES = {
    CAR: ((1.6, 1.9), (1.35, 1.6), 0.0),
    TRUCK: ((2.3, 2.6), (2.8, 3.6), 0.0),
    PEDESTRIAN: ((0.5, 0.7), (1.55, 1.9), 0.0),
    CYCLIST: ((1.6, 1.8), (1.6, 1.85), 0.0),
    SIGN: ((0.6, 0.8), (0.6, 0.8), 1.8),
    LIGHT: ((0.3, 0.4), (0.85, 1.0), 2.8),
}
CLASS_WEIGHTS = np.array([0.38, 0.1, 0.2, 0.1, 0.12, 0.1])  # draw frequencies

LIGHTING = {  # sky top, sky bottom, ambient, tint, noise sigma
    "day": ((0.35, 0.55, 0.85), (0.75, 0.85, 0.95), 1.0, (1.0, 1.0, 1.0), 0.015),
    "dusk": ((0.25, 0.2, 0.4), (0.95, 0.55, 0.3), 0.55, (1.0, 0.8, 0.65), 0.03),
    "night": ((0.01, 0.01, 0.04), (0.06, 0.06, 0.12), 0.18, (0.8, 0.85, 1.0), 0.05),
}
LIGHTING_P = (0.55, 0.25, 0.2)

CAR_COLOURS = np.array(
    [
        [0.8, 0.1, 0.1],
        [0.1, 0.2, 0.6],
        [0.9, 0.9, 0.9],
        [0.1, 0.1, 0.1],
        [0.5, 0.5, 0.55],
        [0.7, 0.7, 0.2],
        [0.2, 0.45, 0.3],
        [0.6, 0.35, 0.15],
    ]  # fmt: skip
)


@dataclass(frozen=True)
class SceneStyle:
    """Difficulty knobs; the defaults define the registered dataset."""

    objects: tuple[int, int] = (3, 12)  # objects drawn per image, inclusive
    max_depth: float = 60.0  # m: farther objects are too small to label anyway
    fog_p: float = 0.2
    rain_p: float = 0.15
    clutter: tuple[int, int] = (2, 8)  # roadside poles, trees, buildings


class Canvas:
    """Albedo, emission, depth and an object-id buffer, with clipped drawing helpers."""

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.albedo = np.zeros((h, w, 3), np.float32)
        self.emit = np.zeros((h, w, 3), np.float32)
        self.depth = np.full((h, w), 1e4, np.float32)
        self.ids = np.full((h, w), -1, np.int32)

    def window(self, x1: float, y1: float, x2: float, y2: float):
        """Integer pixel window ``(slice_y, slice_x, yy, xx)`` of a box, clipped; None if empty."""
        ix1, iy1 = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
        ix2, iy2 = min(int(np.ceil(x2)), self.w), min(int(np.ceil(y2)), self.h)
        if ix2 <= ix1 or iy2 <= iy1:
            return None
        yy, xx = np.mgrid[iy1:iy2, ix1:ix2].astype(np.float32) + 0.5
        return slice(iy1, iy2), slice(ix1, ix2), yy, xx

    def paint(self, win, mask, colour, z: float, oid: int, emit=None) -> None:
        if win is None or not mask.any():
            return
        sy, sx = win[0], win[1]
        self.albedo[sy, sx][mask] = colour
        self.emit[sy, sx][mask] = 0.0 if emit is None else emit
        self.depth[sy, sx][mask] = z
        self.ids[sy, sx][mask] = oid

    def rect(self, x1, y1, x2, y2, colour, z, oid=-1, emit=None) -> int:
        win = self.window(x1, y1, x2, y2)
        if win is None:
            return 0
        _, _, yy, xx = win
        mask = (xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2)
        self.paint(win, mask, colour, z, oid, emit)
        return int(mask.sum())

    def ellipse(self, cx, cy, rx, ry, colour, z, oid=-1, emit=None, ring: float = 0.0) -> None:
        win = self.window(cx - rx, cy - ry, cx + rx, cy + ry)
        if win is None:
            return
        _, _, yy, xx = win
        d = ((xx - cx) / max(rx, 1e-3)) ** 2 + ((yy - cy) / max(ry, 1e-3)) ** 2
        mask = (d <= 1.0) & (d >= ring)
        self.paint(win, mask, colour, z, oid, emit)

    def triangle(self, cx, cy, r, colour, z, oid=-1, down: bool = False) -> None:
        win = self.window(cx - r, cy - r, cx + r, cy + r)
        if win is None:
            return
        _, _, yy, xx = win
        v = (cy - yy) if down else (yy - cy)  # 0 at the centre row, grows towards the base
        mask = (np.abs(v) <= r) & (np.abs(xx - cx) <= (v + r) / 2)
        self.paint(win, mask, colour, z, oid)


def _background(c: Canvas, rng: np.random.Generator, horizon: float, light) -> None:
    h = c.h
    rows = (np.arange(h, dtype=np.float32) + 0.5)[:, None]
    top, bottom = np.array(light[0], np.float32), np.array(light[1], np.float32)
    f = np.clip(rows / max(horizon, 1.0), 0, 1)[..., None]
    sky = top + (bottom - top) * f
    ground = rng.uniform(0.25, 0.45) * np.array(rng.choice([[0.5, 0.7, 0.3], [0.6, 0.55, 0.4]]))
    c.albedo[:] = np.where(rows[..., None] < horizon, sky, ground.astype(np.float32))
    below = np.maximum(rows - horizon, 0.5)
    c.depth[:] = np.where(rows < horizon, 1e4, CAMERA_HEIGHT * h / below)


def _road(c: Canvas, rng: np.random.Generator, horizon: float, vx: float, lanes: int) -> float:
    """Asphalt, kerbs and dashed lane marks; returns the road half-width, m."""
    lane_w = 3.5
    half = lanes * lane_w / 2
    h, w = c.h, c.w
    ys = np.arange(int(np.ceil(horizon)), h)
    if len(ys) == 0:
        return half
    yy = ys[:, None] + 0.5
    ppm = (yy - horizon) / CAMERA_HEIGHT  # px per m at each row (focal length = h)
    xx = np.arange(w)[None, :] + 0.5
    lateral = (xx - vx) / ppm  # m from the road's centre line
    grey = rng.uniform(0.25, 0.4)
    tex = rng.standard_normal(lateral.shape, dtype=np.float32) * 0.02
    road = np.abs(lateral) <= half
    region = c.albedo[ys]
    region[road] = (grey + tex[road])[:, None]
    kerb = (np.abs(lateral) > half) & (np.abs(lateral) <= half + 0.3)
    region[kerb] = 0.7
    z = CAMERA_HEIGHT * h / np.maximum(yy - horizon, 0.5)
    phase = rng.uniform(0, 1)
    dash = ((z / 6.0 + phase) % 1.0) < 0.45  # 6 m period: 2.7 m paint, 3.3 m gap
    marks = np.zeros_like(road)
    for k in range(1, lanes):
        x_m = -half + k * lane_w
        marks |= (np.abs(lateral - x_m) <= 0.08) & dash
    for edge in (-half + 0.25, half - 0.25):
        marks |= np.abs(lateral - edge) <= 0.1
    region[marks] = 0.85
    c.albedo[ys] = region
    return half


def _clutter(c: Canvas, rng: np.random.Generator, horizon: float, vx: float, half: float) -> None:
    """Unlabelled roadside things: poles, trees and building fronts, far to near."""
    n = int(rng.integers(*SceneStyle().clutter, endpoint=True))
    items = sorted(rng.uniform(5.0, 60.0, size=n), reverse=True)
    for z in items:
        ppm = c.h / z  # px per m at depth z (f = image height)
        side = rng.choice([-1.0, 1.0])
        x = vx + side * (half + rng.uniform(1.5, 12.0)) * ppm
        y = horizon + CAMERA_HEIGHT * ppm
        kind = rng.integers(0, 3)
        if kind == 0:  # pole
            hgt = rng.uniform(3, 7) * ppm
            c.rect(x - 0.08 * ppm, y - hgt, x + 0.08 * ppm, y, (0.35, 0.35, 0.35), z)
        elif kind == 1:  # tree: trunk and crown
            hgt = rng.uniform(3, 8) * ppm
            green = (0.1, rng.uniform(0.3, 0.5), 0.1)
            c.rect(x - 0.15 * ppm, y - 0.4 * hgt, x + 0.15 * ppm, y, (0.35, 0.22, 0.1), z)
            c.ellipse(x, y - 0.65 * hgt, 0.3 * hgt, 0.35 * hgt, green, z)
        else:  # building front with windows
            bw, bh = rng.uniform(6, 15) * ppm, rng.uniform(5, 15) * ppm
            col = rng.uniform(0.3, 0.7, size=3)
            c.rect(x - bw / 2, y - bh, x + bw / 2, y, col, z + 3)
            for _ in range(4):
                wx, wy = rng.uniform(-0.4, 0.3) * bw, rng.uniform(0.2, 0.8) * bh
                c.rect(x + wx, y - wy, x + wx + 0.1 * bw, y - wy + 0.1 * bh, (0.15, 0.2, 0.3), z)


def _vehicle(c: Canvas, rng, box, z, oid, truck: bool, night: bool) -> None:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    body = CAR_COLOURS[rng.integers(len(CAR_COLOURS))] * rng.uniform(0.8, 1.1)
    if truck:
        cargo = rng.uniform(0.5, 0.95, size=3)
        c.rect(x1, y1, x2, y2 - 0.15 * h, cargo, z, oid)
        c.rect(x1 + 0.05 * w, y2 - 0.3 * h, x2 - 0.05 * w, y2 - 0.15 * h, body, z, oid)
    else:
        c.rect(x1 + 0.15 * w, y1, x2 - 0.15 * w, y1 + 0.45 * h, body, z, oid)  # cabin
        c.rect(x1 + 0.22 * w, y1 + 0.08 * h, x2 - 0.22 * w, y1 + 0.4 * h, (0.1, 0.12, 0.15), z, oid)
        c.rect(x1, y1 + 0.4 * h, x2, y2 - 0.12 * h, body, z, oid)
    for wx in (x1 + 0.05 * w, x2 - 0.25 * w):  # wheels
        c.rect(wx, y2 - 0.18 * h, wx + 0.2 * w, y2, (0.05, 0.05, 0.05), z, oid)
    glow = (1.6, 0.1, 0.1) if night else (0.5, 0.02, 0.02)
    ly = y2 - (0.55 if truck else 0.45) * h
    for lx in (x1 + 0.03 * w, x2 - 0.15 * w):  # tail lights
        c.rect(lx, ly, lx + 0.12 * w, ly + 0.1 * h, (0.8, 0.1, 0.1), z, oid, emit=glow)


def _person(c: Canvas, rng, box, z, oid, cyclist: bool) -> None:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    shirt, trousers = rng.uniform(0.05, 0.9, size=3), rng.uniform(0.05, 0.5, size=3)
    skin = np.array((0.85, 0.65, 0.5)) * rng.uniform(0.5, 1.1)
    if cyclist:
        r = 0.22 * w
        for cx in (x1 + r, x2 - r):
            c.ellipse(cx, y2 - r, r, r, (0.08, 0.08, 0.08), z, oid, ring=0.55)
        c.rect(x1 + r, y2 - 1.3 * r, x2 - r, y2 - 1.1 * r, rng.uniform(0.2, 0.9, size=3), z, oid)
        mx = (x1 + x2) / 2
        c.rect(mx - 0.08 * w, y1 + 0.22 * h, mx + 0.12 * w, y1 + 0.55 * h, shirt, z, oid)
        c.rect(mx - 0.05 * w, y1 + 0.55 * h, mx + 0.05 * w, y2 - r, trousers, z, oid)
        c.ellipse(mx + 0.02 * w, y1 + 0.11 * h, 0.07 * w, 0.1 * h, skin, z, oid)
        return
    c.ellipse((x1 + x2) / 2, y1 + 0.07 * h, 0.3 * w, 0.07 * h, skin, z, oid)
    c.rect(x1 + 0.05 * w, y1 + 0.14 * h, x2 - 0.05 * w, y1 + 0.52 * h, shirt, z, oid)
    stride = rng.uniform(0.0, 0.15) * w
    c.rect(x1 + 0.15 * w - stride, y1 + 0.52 * h, x1 + 0.45 * w, y2, trousers, z, oid)
    c.rect(x1 + 0.55 * w, y1 + 0.52 * h, x2 - 0.15 * w + stride, y2, trousers, z, oid)


def _sign(c: Canvas, rng, box, z, oid, ground_y: float) -> None:
    x1, y1, x2, y2 = box
    cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
    c.rect(cx - 0.08 * r, y2, cx + 0.08 * r, ground_y, (0.45, 0.45, 0.45), z + 0.01)  # pole
    kind = rng.integers(0, 3)
    if kind == 0:
        c.ellipse(cx, cy, r, r, (0.8, 0.1, 0.1), z, oid)
        c.ellipse(cx, cy, 0.7 * r, 0.7 * r, (0.95, 0.95, 0.95), z, oid)
    elif kind == 1:
        c.triangle(cx, cy, r, (0.8, 0.1, 0.1), z, oid, down=rng.random() < 0.3)
        c.triangle(cx, cy + 0.1 * r, 0.55 * r, (0.95, 0.95, 0.95), z, oid)
    else:
        c.rect(x1, y1, x2, y2, (0.1, 0.3, 0.75), z, oid)
        c.rect(cx - 0.15 * r, y1 + 0.2 * r, cx + 0.15 * r, y2 - 0.2 * r, (0.95,) * 3, z, oid)


def _light(c: Canvas, rng, box, z, oid, ground_y: float) -> None:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    c.rect(
        (x1 + x2) / 2 - 0.1 * w, y2, (x1 + x2) / 2 + 0.1 * w, ground_y, (0.3, 0.3, 0.3), z + 0.01
    )
    c.rect(x1, y1, x2, y2, (0.08, 0.08, 0.08), z, oid)
    lit = rng.integers(0, 3)
    lamps = ((1.0, 0.1, 0.05), (1.0, 0.75, 0.05), (0.1, 1.0, 0.3))
    for k, col in enumerate(lamps):
        cy = y1 + (k + 0.5) * h / 3
        dim = np.array(col) * 0.2
        emit = np.array(col) * 1.4 if k == lit else None
        c.ellipse((x1 + x2) / 2, cy, 0.35 * w, 0.13 * h, dim, z, oid, emit=emit)


def render_scene(
    rng: np.random.Generator, size: tuple[int, int], style: SceneStyle = SceneStyle()
) -> tuple[np.ndarray, np.ndarray]:
    """One scene: ``(uint8 H,W,3 image, float32 (M, 5) rows [class, x1, y1, x2, y2])``."""
    h, w = size
    c = Canvas(h, w)
    light_name = ("day", "dusk", "night")[rng.choice(3, p=LIGHTING_P)]
    light = LIGHTING[light_name]
    night = light_name == "night"
    horizon = h * rng.uniform(0.36, 0.5)
    vx = w * rng.uniform(0.35, 0.65)  # vanishing point: the road bends left or right
    _background(c, rng, horizon, light)
    lanes = int(rng.integers(2, 5))
    half = _road(c, rng, horizon, vx, lanes)
    _clutter(c, rng, horizon, vx, half)

    n = int(rng.integers(style.objects[0], style.objects[1], endpoint=True))
    classes = rng.choice(6, size=n, p=CLASS_WEIGHTS / CLASS_WEIGHTS.sum())
    depths = h / (horizon + 1) * CAMERA_HEIGHT + rng.uniform(0, 1, size=n) ** 1.5 * style.max_depth
    full: list[tuple[int, np.ndarray, float, int]] = []
    for k in np.argsort(-depths):  # far to near: the painter's algorithm
        cls, z = int(classes[k]), float(depths[k])
        ppm = h / z
        (w0, w1), (h0, h1), lift = SIZES[cls]
        ow, oh = rng.uniform(w0, w1) * ppm, rng.uniform(h0, h1) * ppm
        if cls in (CAR, TRUCK):
            lane = rng.integers(0, lanes)
            lateral = -half + (lane + 0.5) * 3.5 + rng.normal(0, 0.3)
        elif cls == CYCLIST:
            lateral = rng.choice([-1, 1]) * (half - rng.uniform(0.5, 1.2))
        else:  # pedestrians, signs and lights stand beside the road
            lateral = rng.choice([-1, 1]) * (half + rng.uniform(0.8, 4.0))
        ground_y = horizon + CAMERA_HEIGHT * ppm
        cx = vx + lateral * ppm
        box = np.array(
            [cx - ow / 2, ground_y - lift * ppm - oh, cx + ow / 2, ground_y - lift * ppm]
        )
        oid = len(full)
        area = ow * oh
        if cls in (CAR, TRUCK):
            _vehicle(c, rng, box, z, oid, cls == TRUCK, night)
        elif cls in (PEDESTRIAN, CYCLIST):
            _person(c, rng, box, z, oid, cls == CYCLIST)
        elif cls == SIGN:
            _sign(c, rng, box, z, oid, ground_y)
        else:
            _light(c, rng, box, z, oid, ground_y)
        full.append((cls, box, area, oid))

    # what is left visible of each object decides whether it gets a label
    counts = np.bincount(c.ids[c.ids >= 0].ravel(), minlength=len(full))
    rows = []
    for cls, box, _, oid in full:
        clipped = np.clip(box, 0, [w, h, w, h])
        painted = counts[oid]
        drawn = _drawn_area(cls, box)
        if clipped[3] - clipped[1] < MIN_HEIGHT or clipped[2] - clipped[0] < 1.0:
            continue
        if painted < MIN_VISIBLE * drawn:
            continue
        rows.append([cls, *clipped])

    img = _finish(c, rng, light, night, style)
    return img, np.array(rows, np.float32).reshape(-1, 5)


def _drawn_area(cls: int, box: np.ndarray) -> float:
    """Pixels an unoccluded, untruncated object of this class paints (its fill fraction)."""
    fill = {CAR: 0.85, TRUCK: 0.95, PEDESTRIAN: 0.6, CYCLIST: 0.35, SIGN: 0.6, LIGHT: 1.0}[cls]
    return fill * max(box[2] - box[0], 0) * max(box[3] - box[1], 0)


def _finish(c: Canvas, rng, light, night: bool, style: SceneStyle) -> np.ndarray:
    h, w = c.h, c.w
    ambient = light[2] * rng.uniform(0.85, 1.15)
    tint = np.array(light[3], np.float32)
    img = c.albedo * (ambient * tint).astype(np.float32)
    if night:  # headlights: the near road is lit
        rows = (np.arange(h, dtype=np.float32) / h)[:, None, None]
        img = img + c.albedo * 0.5 * np.clip(rows - 0.6, 0, None) / 0.4
    img += c.emit
    if rng.random() < style.fog_p:
        haze = np.array(light[1], np.float32) * (0.5 if night else 1.0)
        t = np.exp(-c.depth / rng.uniform(20, 60))[..., None]
        img = img * t + haze * (1 - t)
    if rng.random() < style.rain_p:
        for _ in range(int(rng.integers(40, 120))):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            ln = rng.uniform(4, 12)
            ys = np.arange(int(y), min(int(y + ln), h))
            xs = np.clip((x + 0.3 * (ys - y)).astype(int), 0, w - 1)
            img[ys, xs] = img[ys, xs] * 0.6 + 0.35
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(light[4])
    np.clip(img, 0, 1, out=img)
    return (img * 255 + 0.5).astype(np.uint8)
