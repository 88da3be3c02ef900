"""``quantize`` stage: INT8 post-training quantization, deployed as an ONNX QDQ model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import Strict
from edgeslim.recipe.state import PipelineContext, PipelineState

WEIGHT_OBSERVERS = ("minmax", "mse", "aciq", "percentile")


class QuantizeSettings(Strict):
    w_bits: int = Field(8, ge=2, le=8)
    a_bits: Literal[8] = 8  # ONNX Runtime's integer kernels take 8-bit activations
    calib_method: Literal["minmax", "percentile", "kl", "mse", "aciq"] = "percentile"
    per_channel: bool = True
    calib_batches: int = Field(16, ge=1)
    bias_correction: bool = False
    exclude: list[str] = Field(default_factory=list)


def ptq_config(s: QuantizeSettings, keep_float: tuple[str, ...] = ()):
    """The :class:`~edgeslim.quant.config.PTQConfig` of these settings (``keep_float`` excluded)."""
    from edgeslim.quant.config import PTQConfig, activation_spec, weight_spec

    wmethod = s.calib_method if s.calib_method in WEIGHT_OBSERVERS else "minmax"
    return PTQConfig(
        weight=weight_spec(s.w_bits, wmethod, s.per_channel),
        activation=activation_spec(s.a_bits, s.calib_method),
        calib_batches=s.calib_batches,
        bias_correction=s.bias_correction,
        exclude=tuple(s.exclude) + tuple(keep_float),
    )


@register_stage("quantize", QuantizeSettings, "INT8 PTQ with edgeslim's own scales, ONNX QDQ")
def run(state: PipelineState, s: QuantizeSettings, ctx: PipelineContext) -> PipelineState:
    from edgeslim.quant.ptq import quantize_ptq
    from edgeslim.quant.qdq import export_qdq
    from edgeslim.workflows.quantize import calibration_loader

    data = ctx.require_data("quantize")
    # layers a preceding ``search`` stage chose to keep in float (its latency assumed it)
    keep_float = tuple((state.notes.get("search") or {}).get("float_layers", ()))
    cfg = ptq_config(s, keep_float)
    qm = quantize_ptq(state.lm.model, calibration_loader(data), cfg, progress=ctx.progress)
    res = export_qdq(qm.model, state.lm.require_input(), ctx.work_dir / "int8.onnx")
    layers = {k: dict(v) for k, v in state.layers.items()}
    for name in qm.layers():
        layers.setdefault(name, {})["bits"] = s.w_bits
    notes = {
        **state.notes,
        "quantize": f"W{s.w_bits}A{s.a_bits} {s.calib_method}, {len(qm.layers())} layers"
        + (f", {len(keep_float)} kept in float by search" if keep_float else ""),
    }
    return PipelineState(state.lm, res.path, layers, notes)
