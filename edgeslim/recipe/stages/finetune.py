"""``finetune`` stage: train the current model on the recipe's data (the data's task loss).

On a fake-quantized model (after ``quantize``) this is quantization-aware
training: weights train through the quantizers with straight-through gradients,
and the scales become parameters and train with them (LSQ); the stage's
deployable is then the INT8 QDQ export of the trained model.
"""

from __future__ import annotations

from pydantic import Field

from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import TrainSettings
from edgeslim.recipe.state import PipelineContext, PipelineState


class FinetuneSettings(TrainSettings):
    epochs: int = Field(2, ge=1)
    lr: float = Field(0.01, gt=0)


@register_stage("finetune", FinetuneSettings, "train the current model on the recipe's data")
def run(state: PipelineState, s: FinetuneSettings, ctx: PipelineContext) -> PipelineState:
    from edgeslim.recipe.deploy import is_fake_quantized
    from edgeslim.train.trainer import Trainer

    ctx.require_data("finetune")
    if is_fake_quantized(state.lm.model):
        from edgeslim.quant.fake_quant import learn_scales_

        learn_scales_(state.lm.model)
    Trainer(
        state.lm.model,
        s.train_config(ctx.seed),
        ckpt_dir=ctx.work_dir / "ckpt",
        progress=ctx.progress,
        task=ctx.task,
    ).fit(ctx.dataset("train", augment=True), ctx.dataset("val"))
    return state
