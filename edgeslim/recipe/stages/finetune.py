"""``finetune`` stage: train the current model on the recipe's data (plain cross-entropy)."""

from __future__ import annotations

from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import Strict
from edgeslim.recipe.state import PipelineContext, PipelineState


class FinetuneSettings(Strict):
    epochs: int = 2
    lr: float = 0.01
    batch_size: int = 128
    weight_decay: float = 5e-4


def train_settings(s, ctx: PipelineContext):
    from edgeslim.train.config import TrainConfig

    return TrainConfig(
        epochs=s.epochs,
        lr=s.lr,
        batch_size=s.batch_size,
        weight_decay=s.weight_decay,
        seed=ctx.seed,
    )


@register_stage("finetune", FinetuneSettings, "train the current model on the recipe's data")
def run(state: PipelineState, s: FinetuneSettings, ctx: PipelineContext) -> PipelineState:
    from edgeslim.train.trainer import Trainer

    ctx.require_data("finetune")
    Trainer(
        state.lm.model,
        train_settings(s, ctx),
        ckpt_dir=ctx.work_dir / "ckpt",
        progress=ctx.progress,
    ).fit(ctx.dataset("train", augment=True), ctx.dataset("val"))
    return state
