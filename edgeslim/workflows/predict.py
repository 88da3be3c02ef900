"""Run a detector on image files and draw what it finds (``edgeslim predict``).

Any detector edgeslim loads (zoo name, saved model, ``file.py:factory``) runs eagerly
inside :class:`~edgeslim.tasks.detection.detect.Detect`; an ONNX file runs on ONNX
Runtime, either a raw-head export (decoded and NMS'd here with the task's own code) or
one with post-processing in the graph (``boxes, scores, classes, batch_index``, used as
is). Images are stretched to the model's input size, as the loaders do, and the boxes
are scaled back to the original pixels before they are drawn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgeslim.core.atomic import atomic_path
from edgeslim.core.errors import EdgeslimError
from edgeslim.data.detection import read_image
from edgeslim.tasks.detection.detect import NMSConfig
from edgeslim.tasks.detection.draw import draw_detections

POST_OUTPUTS = ("boxes", "scores", "classes", "batch_index")


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (K, 4) xyxy in the original image's pixels
    scores: np.ndarray
    classes: np.ndarray


class OnnxDetector:
    """An ONNX detector file as ``image batch -> [Detections per image]`` (model pixels)."""

    def __init__(self, path: Path, cfg: NMSConfig) -> None:
        from edgeslim.export.ort import ort_session

        self.session = ort_session(path)
        inp = self.session.get_inputs()[0]
        dims = inp.shape[-2:]
        if len(inp.shape) != 4 or not all(isinstance(d, int) for d in dims):
            raise EdgeslimError(f"{path}: expected an image input (N, 3, H, W), got {inp.shape}")
        self.size = (int(dims[0]), int(dims[1]))
        self.names = [o.name for o in self.session.get_outputs()]
        self.cfg = cfg

    def __call__(self, x: torch.Tensor) -> list[Detections]:
        out = self.session.run(None, {self.session.get_inputs()[0].name: x.numpy()})
        if tuple(self.names) == POST_OUTPUTS:  # NMS in the graph
            boxes, scores, classes, index = out
            return [
                Detections(boxes[index == i], scores[index == i], classes[index == i])
                for i in range(len(x))
            ]
        if any(o.ndim != 4 for o in out):
            raise EdgeslimError("the ONNX file's outputs are not a detector's raw head maps")
        return _postprocess([torch.from_numpy(o) for o in out], self.cfg)


def _postprocess(raw, cfg: NMSConfig) -> list[Detections]:
    from edgeslim.tasks.detection.coco_map import postprocess
    from edgeslim.tasks.detection.heads import decode_outputs

    dets = postprocess(decode_outputs(raw), cfg.conf, cfg.iou, cfg.max_det, cfg.max_candidates)
    return [Detections(d[:, :4].numpy(), d[:, 4].numpy(), d[:, 5].long().numpy()) for d in dets]


def torch_detector(model: torch.nn.Module, cfg: NMSConfig):
    """An eager detector as ``image batch -> [Detections per image]`` (model pixels)."""
    from edgeslim.core.modes import eval_mode

    def run(x: torch.Tensor) -> list[Detections]:
        with eval_mode(model), torch.no_grad():
            return _postprocess(model(x), cfg)

    return run


def load_images(paths: Sequence[str | Path], size: tuple[int, int]):
    """Each image as (original uint8 H,W,3, float tensor 3,h,w in [0, 1] at ``size``)."""
    from PIL import Image

    for p in paths:
        image = read_image(Path(p))
        small = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))
        yield image, torch.from_numpy(small.copy()).permute(2, 0, 1).float().div(255.0)


def predict_files(
    detector, size: tuple[int, int], images: Sequence[str | Path], out_dir: Path, names=()
) -> list[dict]:
    """Draw ``detector``'s detections on each image into ``out_dir/<stem>.png``; return them.

    Also writes ``out_dir/detections.json`` (boxes in original pixels).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = [Path(p).stem for p in images]
    if len(set(stems)) != len(stems):
        raise EdgeslimError("two images share a file name: their drawings would overwrite")
    results = []
    for path, (image, x) in zip(images, load_images(images, size), strict=True):
        det = detector(x[None])[0]
        sx, sy = image.shape[1] / size[1], image.shape[0] / size[0]
        boxes = np.asarray(det.boxes, np.float32).reshape(-1, 4) * [sx, sy, sx, sy]
        h, w = image.shape[:2]  # clipped to the image, as YOLOv5's scale_boxes does
        boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
        drawn = draw_detections(image, boxes, det.scores, det.classes, names)
        with atomic_path(out_dir / f"{Path(path).stem}.png") as tmp:
            drawn.save(tmp, format="PNG")
        results.append(
            {
                "image": str(path),
                "drawing": str(out_dir / f"{Path(path).stem}.png"),
                "detections": [
                    {
                        "class": int(c),
                        "name": names[int(c)] if int(c) < len(names) else str(int(c)),
                        "score": float(s),
                        "box_xyxy": [round(float(v), 2) for v in b],
                    }
                    for b, s, c in zip(boxes, det.scores, det.classes, strict=True)
                ],
            }
        )
    with atomic_path(out_dir / "detections.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n")
    return results


def before_after_png(
    before, after, dataset, count: int = 3, names: Sequence[str] = (), cfg: NMSConfig | None = None
) -> bytes:
    """One PNG: for the first ``count`` samples of a detection ``dataset``, the detections of
    ``before`` (left) and ``after`` (right) side by side, one row per image.

    ``before``/``after``: callables ``image batch -> [Detections]`` (:func:`torch_detector`,
    :class:`OnnxDetector`). The compress report shows it: people would rather look at
    boxes than read mAP.
    """
    import io

    from PIL import Image, ImageDraw

    rows = []
    for i in range(min(count, len(dataset))):
        x = dataset[i][0]
        image = (x.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
        pair = []
        for run in (before, after):
            d = run(x[None])[0]
            pair.append(draw_detections(image, d.boxes, d.scores, d.classes, names))
        rows.append(pair)
    if not rows:
        raise EdgeslimError("no test images to draw detections on")
    w, h = rows[0][0].size
    head = 16
    sheet = Image.new("RGB", (2 * w + 8, head + len(rows) * (h + 8)), (255, 255, 255))
    pen = ImageDraw.Draw(sheet)
    pen.text((4, 2), "before (input model)", fill=(0, 0, 0))
    pen.text((w + 12, 2), "after (deployed file)", fill=(0, 0, 0))
    for r, (a, b) in enumerate(rows):
        sheet.paste(a, (0, head + r * (h + 8)))
        sheet.paste(b, (w + 8, head + r * (h + 8)))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()
