"""``export`` stage: the deployable ONNX of the current model (INT8 QDQ when fake-quantized)."""

from __future__ import annotations

from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import Strict
from edgeslim.recipe.state import PipelineContext, PipelineState


class ExportSettings(Strict):
    opset: int = 18


@register_stage("export", ExportSettings, "write the deployable ONNX model (FP32 or INT8 QDQ)")
def run(state: PipelineState, s: ExportSettings, ctx: PipelineContext) -> PipelineState:
    from edgeslim.recipe.deploy import export_deployable, is_fake_quantized, pack_low_bits

    lm = state.lm
    if is_fake_quantized(lm.model):
        path = export_deployable(lm.model, lm.require_input(), ctx.work_dir / "int8.onnx", s.opset)
        # layers an earlier stage (search, HAWQ) gave <= 4-bit weights stay packed as INT4
        bits = {k: v.get("w_bits") or v.get("bits") for k, v in state.layers.items()}
        pack_low_bits(path, {k: b for k, b in bits.items() if b is not None})
        return PipelineState(lm, path, state.layers, state.notes)
    from edgeslim.export.onnx import export_onnx

    res = export_onnx(lm.model, lm.require_input(), ctx.work_dir / "export.onnx", opset=s.opset)
    return PipelineState(lm, res.path, state.layers, {**state.notes, "parity": res.max_abs_diff})
