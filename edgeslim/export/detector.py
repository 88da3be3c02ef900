"""Export a detector with its post-processing: ONNX that returns boxes, scores, classes.

The graph is :class:`edgeslim.tasks.detection.detect.Detect` in ONNX: its
tensor half (:class:`~edgeslim.tasks.detection.detect.Candidates`: decode, score,
top-k, per-class box offset) is exported by torch.onnx, then the exported graph gets
one ``NonMaxSuppression`` node (ONNX opset >= 11) over the offset boxes, so a single
class-aware NMS runs over every image of the batch, and ``Gather``/``GatherND`` nodes
that pick the kept rows. Graph outputs, ``K`` detections over the whole batch::

    boxes (K, 4) float xyxy px, scores (K,) float, classes (K,) int64,
    batch_index (K,) int64    (rows of one image best first, as ONNX NMS returns them)

The export is checked like :func:`edgeslim.export.onnx.export_onnx`'s: ONNX Runtime
must return the same detections as eager :class:`Detect` (the task's own NMS) on a
batch of 3, or the export fails.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper
from torch import nn

from edgeslim.core.atomic import atomic_path
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode
from edgeslim.export.onnx import DEFAULT_OPSET, ExportResult, export_onnx
from edgeslim.export.ort import ort_outputs, ort_session
from edgeslim.models.inputs import InputSpec
from edgeslim.tasks.detection.detect import Candidates, Detect, NMSConfig

OUTPUTS = ("boxes", "scores", "classes", "batch_index")


def export_detector(
    model: nn.Module,
    input_spec: InputSpec,
    path: str | Path,
    score_thr: float = 0.25,
    iou_thr: float = 0.45,
    max_det: int = 100,
    *,
    opset: int = DEFAULT_OPSET,
    atol: float = 1e-4,
) -> ExportResult:
    """Export raw-head detector ``model`` plus decode and class-aware NMS to ``path``.

    Args:
        model: returns YOLOv5 or RetinaNet head maps; its train/eval mode is restored.
        input_spec: one input; the batch dimension becomes dynamic.
        path: destination ``.onnx`` (written atomically).
        score_thr, iou_thr, max_det: as :class:`NMSConfig`'s ``conf``, ``iou``, ``max_det``.
        opset: ONNX opset, 17 or newer.
        atol: parity tolerance on boxes (px, scaled by the largest coordinate) and scores.

    Example:
        >>> from edgeslim.models import build_zoo_model
        >>> r = export_detector(build_zoo_model("yolov5n"), InputSpec((1, 3, 128, 128)),
        ...                     "/tmp/yolo_nms.onnx", score_thr=0.1)
        >>> r.max_abs_diff < 1e-4
        True
    """
    detect = Detect(model, NMSConfig(score_thr, iou_thr, max_det))
    path = Path(path)
    with eval_mode(model), atomic_path(path) as tmp:
        with tempfile.TemporaryDirectory() as d:
            raw = Path(d) / "candidates.onnx"
            export_onnx(Candidates(detect), input_spec, raw, opset=opset, check=False)
            graph = onnx.load(str(raw))
        add_nms(graph, detect.config)
        onnx.save(graph, str(tmp))
        diffs = detection_parity(detect, input_spec, tmp, atol)
    return ExportResult(path, max(diffs.values()), path.stat().st_size, diffs)


def add_nms(model: onnx.ModelProto, cfg: NMSConfig) -> None:
    """Replace the candidates' five outputs by NMS and the four detection outputs."""
    g = model.graph
    shifted, nms_scores, boxes, scores, classes = (o.name for o in g.output)
    consts = [
        helper.make_tensor("nms_max_det", TensorProto.INT64, [1], [cfg.max_det]),
        helper.make_tensor("nms_iou", TensorProto.FLOAT, [1], [cfg.iou]),
        helper.make_tensor("nms_conf", TensorProto.FLOAT, [1], [cfg.conf]),
        helper.make_tensor("nms_col0", TensorProto.INT64, [1], [0]),
        helper.make_tensor("nms_col2", TensorProto.INT64, [1], [2]),
    ]
    g.initializer.extend(consts)
    g.node.extend(
        [
            # selected (K, 3): [batch, class (always 0: one offset class), row], best first
            helper.make_node(
                "NonMaxSuppression",
                [shifted, nms_scores, "nms_max_det", "nms_iou", "nms_conf"],
                ["nms_selected"],
                center_point_box=0,
            ),
            helper.make_node("Gather", ["nms_selected", "nms_col0"], ["nms_b"], axis=1),
            helper.make_node("Gather", ["nms_selected", "nms_col2"], ["nms_i"], axis=1),
            helper.make_node("Concat", ["nms_b", "nms_i"], ["nms_bi"], axis=1),  # (K, 2)
            helper.make_node("GatherND", [boxes, "nms_bi"], [OUTPUTS[0]]),
            helper.make_node("GatherND", [scores, "nms_bi"], [OUTPUTS[1]]),
            helper.make_node("GatherND", [classes, "nms_bi"], [OUTPUTS[2]]),
            helper.make_node("Squeeze", ["nms_b", "nms_col2_axis"], [OUTPUTS[3]]),
        ]
    )
    g.initializer.append(helper.make_tensor("nms_col2_axis", TensorProto.INT64, [1], [1]))
    del g.output[:]
    g.output.extend(
        [
            helper.make_tensor_value_info(OUTPUTS[0], TensorProto.FLOAT, ["detections", 4]),
            helper.make_tensor_value_info(OUTPUTS[1], TensorProto.FLOAT, ["detections"]),
            helper.make_tensor_value_info(OUTPUTS[2], TensorProto.INT64, ["detections"]),
            helper.make_tensor_value_info(OUTPUTS[3], TensorProto.INT64, ["detections"]),
        ]
    )
    onnx.checker.check_model(model)


def detection_parity(
    detect: Detect, spec: InputSpec, onnx_path: Path, atol: float = 1e-4, seed: int = 1
) -> dict[str, float]:
    """Max |ONNX Runtime - eager| per output on a batch of 3; raise on any mismatch.

    The two must keep the same number of detections per image, with the same classes,
    and boxes within ``atol * max(1, largest |coordinate|)`` px, scores within ``atol``.
    """
    x = spec.example(batch=3, seed=seed)
    with torch.no_grad():
        ref = [t.numpy() for t in detect(x)]
    got = list(ort_outputs(ort_session(onnx_path), x.numpy()).values())
    if len(got[0]) != len(ref[0]) or not np.array_equal(got[3], ref[3]):
        raise EdgeslimError(
            f"ONNX parity check failed: ONNX Runtime kept {len(got[0])} detections, "
            f"eager {len(ref[0])}"
        )
    if not np.array_equal(got[2], ref[2]):
        raise EdgeslimError("ONNX parity check failed: ONNX Runtime and eager classes differ")
    diffs = {
        n: float(np.abs(g - r).max(initial=0.0)) for n, g, r in zip(OUTPUTS, got, ref, strict=True)
    }
    scale = max(1.0, float(np.abs(ref[0]).max(initial=0.0)))
    for name, tol in (("boxes", atol * scale), ("scores", atol)):
        if not diffs[name] <= tol:
            raise EdgeslimError(
                f"ONNX parity check failed on {name!r}: max |ort - eager| = {diffs[name]:.3g}"
            )
    return diffs
