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
    method: Literal[
        "ste", "lsq", "lsq_plus", "pact", "dorefa", "dsq", "binary", "ternary", "learned_bits"
    ] = "lsq"
    w_bits: int = Field(4, ge=2, le=8, description="learned_bits: the bits it starts from")
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
    target_bits: float = Field(5.0, ge=2, le=8, description="learned_bits: average weight bits")
    penalty: float = Field(1.0, ge=0, description="learned_bits: the size penalty's strength")
    steps: tuple[int, int, int] = Field(
        (2, 1, 1), description="learned_bits: epochs of weights, activations, fine-tune"
    )


def qat_config(s: QATSettings):
    """The method's config of these settings, and its per-layer overrides."""
    from edgeslim.quant.qat import CONFIGS

    extra = {}
    if s.method == "learned_bits":
        w, a, f = s.steps
        extra = {
            "target_bits": s.target_bits,
            "penalty": s.penalty,
            "weight_epochs": w,
            "activation_epochs": a,
            "finetune_epochs": f,
        }
    cfg = CONFIGS[s.method](
        w_bits=s.w_bits,
        a_bits=s.a_bits,
        freeze_bn_epoch=s.freeze_bn_epoch,
        freeze_observer_epoch=s.freeze_observer_epoch,
        calib_batches=s.calib_batches,
        exclude=tuple(s.exclude),
        **extra,
    )
    overrides = {
        pattern: None if bits is None else replace(cfg, **bits.model_dump(exclude_none=True))
        for pattern, bits in s.overrides.items()
    }
    return cfg, overrides


@register_stage("qat", QATSettings, "quantization-aware training (STE, LSQ, LSQ+, PACT, ...)")
def run(state: PipelineState, s: QATSettings, ctx: PipelineContext) -> PipelineState:
    from edgeslim.workflows.qat import REDUCED, deployment, train_qat

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
    if cfg.reduce_range and s.w_bits == 8:
        deploy += REDUCED
    layers = {k: dict(v) for k, v in state.layers.items()}
    for name, c in record.layers.items():
        layers.setdefault(name, {}).update({"w_bits": c.w_bits, "a_bits": c.a_bits})
    learned = record.details.get("learned_bits") or []
    for row in learned:  # the bits each layer learned, not the ones it started from
        got = {"w_bits": row["w_bits"], "a_bits": row["a_bits"]}
        layers.setdefault(row["name"], {}).update(got)
    bits = (
        f"learned bits, avg {record.details['avg_w_bits']:.2f} weight bits"
        if learned
        else f"W{s.w_bits}A{s.a_bits or 'float'}"
    )
    notes = {
        **state.notes,
        "qat": f"{s.method} {bits}, {len(record.layers)} layers, "
        f"{s.epochs} epochs{', distilled' if s.distill else ''}; {deploy}",
    }
    methods = [*lm.methods, record.to_dict()]
    new = LoadedModel(model, lm.source, lm.input, lm.name, lm.meta, methods)
    return PipelineState(new, None, layers, notes)
