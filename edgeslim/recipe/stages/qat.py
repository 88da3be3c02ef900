"""``qat`` stage: quantization-aware training with one of :mod:`edgeslim.quant.qat`'s methods.

The stage applies the method's config through the method registry (calibrated
on the recipe's data), trains the model through its quantizers (optionally
distilling from the model the stage started from: Hinton KD, which usually
helps at low bits), freezes BN statistics and observers at their epochs, and
keeps the QAT model as the pipeline's model (it saves, reloads and trains on).

Its deployable: INT8 QDQ when every quantizer is on the 8-bit grid (W8A8 STE,
LSQ, PACT); otherwise the float graph of the simulation. Activations below 8
bits are simulated only, and so are binary/ternary weights (their gain is size
in a packed format): ONNX Runtime on CPU runs no faster for them; the stage's
note says so.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field

from edgeslim.models.spec import LoadedModel
from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import Strict, TrainSettings
from edgeslim.recipe.state import PipelineContext, PipelineState


class LayerBits(Strict):
    """Bits for the layers an override matches."""

    w_bits: int | None = Field(None, ge=2, le=8)
    a_bits: int | None = Field(None, ge=2, le=8)


class QATSettings(TrainSettings):
    method: Literal["ste", "lsq", "lsq_plus", "pact", "dorefa", "dsq", "binary", "ternary"] = "lsq"
    w_bits: int = Field(4, ge=2, le=8)
    a_bits: int | None = Field(4, ge=2, le=8, description="null: float activations")
    epochs: int = Field(2, ge=1)
    lr: float = Field(0.01, gt=0)
    calib_batches: int = Field(4, ge=1)
    exclude: list[str] = Field(default_factory=list, description="layers kept in float")
    overrides: dict[str, LayerBits | None] = Field(
        default_factory=dict, description="{name or regex: {w_bits, a_bits} or null (float)}"
    )
    freeze_bn_epoch: int | None = Field(None, ge=0)
    freeze_observer_epoch: int | None = Field(None, ge=0)
    distill: bool = Field(False, description="distil from the model the stage started from")
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1)


def qat_config(s: QATSettings):
    """The method's config of these settings, and its per-layer overrides."""
    from edgeslim.quant.qat import CONFIGS

    cfg = CONFIGS[s.method](
        w_bits=s.w_bits,
        a_bits=s.a_bits,
        freeze_bn_epoch=s.freeze_bn_epoch,
        freeze_observer_epoch=s.freeze_observer_epoch,
        calib_batches=s.calib_batches,
        exclude=tuple(s.exclude),
    )
    overrides = {
        pattern: None if bits is None else replace(cfg, **bits.model_dump(exclude_none=True))
        for pattern, bits in s.overrides.items()
    }
    return cfg, overrides


@register_stage("qat", QATSettings, "quantization-aware training (STE, LSQ, LSQ+, PACT, ...)")
def run(state: PipelineState, s: QATSettings, ctx: PipelineContext) -> PipelineState:
    from edgeslim.workflows.qat import deployment, train_qat

    data = ctx.require_data("qat")
    cfg, overrides = qat_config(s)
    lm = state.lm
    model, record, _ = train_qat(
        lm.model,
        cfg,
        data,
        s.train_config(ctx.seed),
        overrides=overrides,
        distill=s.distill,
        temperature=s.temperature,
        alpha=s.alpha,
        ckpt_dir=ctx.work_dir / "ckpt",
        progress=ctx.progress,
    )
    deploy = deployment(model)[1]
    layers = {k: dict(v) for k, v in state.layers.items()}
    for name, c in record.layers.items():
        layers.setdefault(name, {}).update({"w_bits": c.w_bits, "a_bits": c.a_bits})
    notes = {
        **state.notes,
        "qat": f"{s.method} W{s.w_bits}A{s.a_bits or 'float'}, {len(record.layers)} layers, "
        f"{s.epochs} epochs{', distilled' if s.distill else ''}; {deploy}",
    }
    methods = [*lm.methods, record.to_dict()]
    new = LoadedModel(model, lm.source, lm.input, lm.name, lm.meta, methods)
    return PipelineState(new, None, layers, notes)
