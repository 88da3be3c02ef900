"""``edgeslim predict``: a detector's detections on image files, drawn to PNG files."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeslim.cli.common import add_model_args, model_from_args

HELP = "draw a detector's detections on images (any detector spec or an .onnx file)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, BMP)")
    p.add_argument("-o", "--output", required=True, help="folder for the drawings")
    p.add_argument("--data", default=None, help="dataset spec whose class names label boxes")
    p.add_argument("--conf", type=float, default=0.25, help="score threshold")
    p.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold")
    p.add_argument("--max-det", type=int, default=100, help="detections per image")


def run(args: argparse.Namespace) -> int:
    from edgeslim.tasks.detection.detect import NMSConfig
    from edgeslim.workflows.predict import OnnxDetector, predict_files, torch_detector

    cfg = NMSConfig(args.conf, args.iou, args.max_det)
    names: tuple[str, ...] = ()
    if args.data:
        from edgeslim.data import dataset_info

        names = dataset_info(args.data).class_names
    if args.model.endswith(".onnx"):
        detector = OnnxDetector(Path(args.model), cfg)
        size = detector.size
    else:
        lm = model_from_args(args)
        size = tuple(lm.require_input().shape[-2:])
        detector = torch_detector(lm.model, cfg)
    res = predict_files(detector, size, args.images, Path(args.output), names)
    for r in res:
        print(f"{r['image']}: {len(r['detections'])} detections -> {r['drawing']}")
    return 0
