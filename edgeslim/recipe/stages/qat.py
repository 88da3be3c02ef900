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

import re
from dataclasses import replace
from typing import Literal

from pydantic import Field, model_validator

from edgeslim.models.spec import LoadedModel
from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import Strict, TrainSettings
from edgeslim.recipe.stages.quantize import HawqSettings
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
    # QAT of a chosen mixed configuration: the layers a preceding ``search`` gave fewer
    # weight bits take them (and its float layers stay float), or HAWQ-V3 chooses here;
    # every other layer takes ``w_bits``/``a_bits``
    from_search: bool = False
    init: Literal["paper", "mse"] | None = Field(
        None, description="lsq: initial step sizes by the paper's rule or least squared error"
    )

    @model_validator(mode="after")
    def _init_is_lsq(self) -> QATSettings:
        if self.init is not None and self.method != "lsq":
            raise ValueError(f"init applies to method lsq only, not {self.method}")
        return self

    hawq: HawqSettings | None = None


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
    if s.init is not None:
        extra["init"] = s.init
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
    lm = state.lm
    chosen = chosen_bits(state, s, ctx)
    if chosen:
        layer_bits = {
            re.escape(name): None if b >= 32 else LayerBits(w_bits=b) for name, b in chosen.items()
        }
        s = s.model_copy(update={"overrides": {**layer_bits, **s.overrides}})
    cfg, overrides = qat_config(s)
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
    if chosen:
        from collections import Counter

        count = Counter(chosen.values())
        bits += " with " + ", ".join(
            f"{n} layers {'float' if b >= 32 else f'W{b}'}" for b, n in sorted(count.items())
        )
        bits += " chosen by " + ("HAWQ-V3" if s.hawq is not None else "the search")
    notes = {
        **state.notes,
        "qat": f"{s.method} {bits}, {len(record.layers)} layers, "
        f"{s.epochs} epochs{', distilled' if s.distill else ''}; {deploy}",
    }
    methods = [*lm.methods, record.to_dict()]
    new = LoadedModel(model, lm.source, lm.input, lm.name, lm.meta, methods)
    return PipelineState(new, None, layers, notes)


def chosen_bits(state: PipelineState, s: QATSettings, ctx: PipelineContext) -> dict[str, int]:
    """Weight bits per layer (32: float) chosen before QAT: by the search, or by HAWQ-V3."""
    from edgeslim.core.errors import EdgeslimError

    if s.from_search and s.hawq is not None:
        raise EdgeslimError("stage 'qat': choose from_search or hawq, not both")
    if s.from_search:
        found = state.notes.get("search")
        if not found:
            raise EdgeslimError("stage 'qat': from_search needs a 'search' stage before it")
        bits = {str(k): int(v) for k, v in (found.get("low_bits") or {}).items()}
        return {**dict.fromkeys(found.get("float_layers") or (), 32), **bits}
    if s.hawq is not None:
        from edgeslim.recipe.stages.quantize import hawq_bits_for

        return hawq_bits_for(state.lm, s.hawq, ctx)
    return {}
