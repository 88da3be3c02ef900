"""``distill`` stage: recover accuracy by distilling from the recipe's input model."""

from __future__ import annotations

from pydantic import Field

from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import TrainSettings
from edgeslim.recipe.state import PipelineContext, PipelineState


class DistillSettings(TrainSettings):
    epochs: int = Field(3, ge=1)
    lr: float = Field(0.02, gt=0)
    losses: str = "kd"
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1)


@register_stage("distill", DistillSettings, "fine-tune with knowledge distillation from the input")
def run(state: PipelineState, s: DistillSettings, ctx: PipelineContext) -> PipelineState:
    from edgeslim.distill.losses import LossSpec
    from edgeslim.workflows.distill import distill_model

    data = ctx.require_data("distill")
    cfg = s.train_config(ctx.seed)
    spec = LossSpec(temperature=s.temperature, alpha=s.alpha)
    res = distill_model(
        state.lm,
        [ctx.teacher],
        data,
        s.losses,
        spec,
        cfg,
        ctx.work_dir / "student",
        progress=ctx.progress,
    )
    return PipelineState(res.student, None, state.layers, state.notes)
