"""``export`` stage: the deployable ONNX of the current model (FP32, or the INT8 file as is)."""

from __future__ import annotations

from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import Strict
from edgeslim.recipe.state import PipelineContext, PipelineState


class ExportSettings(Strict):
    opset: int = 18


@register_stage("export", ExportSettings, "write the deployable ONNX model (parity-checked)")
def run(state: PipelineState, s: ExportSettings, ctx: PipelineContext) -> PipelineState:
    if state.onnx is not None:
        return state
    from edgeslim.export.onnx import export_onnx

    res = export_onnx(
        state.lm.model, state.lm.require_input(), ctx.work_dir / "export.onnx", opset=s.opset
    )
    return PipelineState(
        state.lm, res.path, state.layers, {**state.notes, "parity": res.max_abs_diff}
    )
