"""``export`` stage: the deployable ONNX of the current model (INT8 QDQ when fake-quantized).

With ``postprocess: nms`` (detectors) the stage also writes ``<file>_nms.onnx``: the
same deployable followed by box decoding and one class-aware ``NonMaxSuppression``
(:mod:`edgeslim.export.postprocess`), so the deployed model returns boxes, scores and
classes; ``compress`` copies it beside ``model.onnx`` as ``model_nms.onnx``. The raw
file stays the stage's model, because the task's metrics (mAP) read raw head maps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import Strict
from edgeslim.recipe.state import PipelineContext, PipelineState


class ExportSettings(Strict):
    opset: int = 18
    postprocess: Literal["none", "nms"] = "none"  # nms: detectors, decode + NMS in the graph
    conf: float = Field(0.25, ge=0, le=1, description="nms: score threshold")
    iou: float = Field(0.45, ge=0, le=1, description="nms: IoU threshold")
    max_det: int = Field(100, ge=1, description="nms: detections per image")


def nms_path(onnx: Path) -> Path:
    """Where the export stage writes the post-processed twin of ``onnx``."""
    return onnx.with_name(f"{onnx.stem}_nms.onnx")


@register_stage("export", ExportSettings, "write the deployable ONNX model (FP32 or INT8 QDQ)")
def run(state: PipelineState, s: ExportSettings, ctx: PipelineContext) -> PipelineState:
    from edgeslim.recipe.deploy import export_deployable, is_fake_quantized, pack_low_bits

    lm = state.lm
    if is_fake_quantized(lm.model):
        path = export_deployable(lm.model, lm.require_input(), ctx.work_dir / "int8.onnx", s.opset)
        # layers an earlier stage (search, HAWQ) gave <= 4-bit weights stay packed as INT4
        bits = {k: v.get("w_bits") or v.get("bits") for k, v in state.layers.items()}
        pack_low_bits(path, {k: b for k, b in bits.items() if b is not None})
        return PipelineState(lm, path, state.layers, {**state.notes, **_post(path, s, lm)})
    from edgeslim.export.onnx import export_onnx

    res = export_onnx(lm.model, lm.require_input(), ctx.work_dir / "export.onnx", opset=s.opset)
    notes = {**state.notes, "parity": res.max_abs_diff, **_post(res.path, s, lm)}
    return PipelineState(lm, res.path, state.layers, notes)


def _post(path: Path, s: ExportSettings, lm) -> dict:
    if s.postprocess == "none":
        return {}
    from edgeslim.export.postprocess import append_postprocess
    from edgeslim.tasks.detection.detect import NMSConfig

    out = nms_path(Path(path))
    append_postprocess(path, lm.require_input(), out, NMSConfig(s.conf, s.iou, s.max_det))
    return {
        "postprocess_file": out.name,  # beside the stage's own file, in its folder
        "postprocess": f"{out.name}: decode + class-aware NMS (conf {s.conf}, IoU {s.iou}, "
        f"at most {s.max_det} per image) in the graph; outputs boxes, scores, classes, "
        "batch_index; checked against the task's NMS on ONNX Runtime's own head maps",
    }
