"""``distill`` stage: recover accuracy by distilling from the recipe's input model.

``losses`` names registered losses (``kd``, ``kd+cosine``, ...). With ``tinybert_stage``
the stage runs TinyBERT's stages instead (:mod:`edgeslim.workflows.tinybert`):
``task`` is the intermediate-layer phase (``epochs``) then the prediction phase
(``prediction_epochs``, soft cross-entropy at ``temperature``); ``general`` and ``both``
add the general phase, on the task's own train split (a recipe names one dataset).
No TinyBERT phase reads a label. ``attention_maps: false`` leaves the attention maps
out of the layer losses, e.g. for a head-pruned student whose kept heads are not the
teacher's head groups.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import TrainSettings
from edgeslim.recipe.state import PipelineContext, PipelineState


class DistillSettings(TrainSettings):
    epochs: int = Field(3, ge=1)
    lr: float = Field(0.02, gt=0)
    losses: str = "kd"
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1)
    tinybert_stage: Literal["general", "task", "both"] | None = None
    prediction_epochs: int | None = Field(None, ge=1, description="TinyBERT's prediction phase")
    attention_maps: bool = True

    @model_validator(mode="after")
    def _tinybert_only(self) -> DistillSettings:
        if self.tinybert_stage is None and self.prediction_epochs is not None:
            raise ValueError("prediction_epochs belongs to tinybert_stage")
        if self.tinybert_stage is not None and self.losses not in ("kd", "tinybert"):
            raise ValueError("tinybert_stage runs TinyBERT's own losses; leave out 'losses'")
        return self


@register_stage("distill", DistillSettings, "fine-tune with knowledge distillation from the input")
def run(state: PipelineState, s: DistillSettings, ctx: PipelineContext) -> PipelineState:
    from edgeslim.distill.losses import LossSpec

    data = ctx.require_data("distill")
    cfg = s.train_config(ctx.seed)
    out = ctx.work_dir / "student"
    if s.tinybert_stage is not None:
        from edgeslim.distill.layers import transformer_pairs
        from edgeslim.workflows.tinybert import TinyBERTPlan, tinybert_distill

        layers = transformer_pairs(state.lm.model, ctx.teacher.model, s.attention_maps)
        plan = TinyBERTPlan.for_stage(
            s.tinybert_stage, s.epochs, s.prediction_epochs, s.temperature
        )
        res = tinybert_distill(
            state.lm, ctx.teacher, data, plan, cfg, out,
            spec=LossSpec(layers=layers), progress=ctx.progress,
        )  # fmt: skip
    else:
        from edgeslim.workflows.distill import distill_model

        spec = LossSpec(temperature=s.temperature, alpha=s.alpha)
        res = distill_model(
            state.lm, [ctx.teacher], data, s.losses, spec, cfg, out, progress=ctx.progress
        )
    return PipelineState(res.student, None, state.layers, state.notes)
