"""``prune`` stage: structured channel pruning (physical removal) of the current model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edgeslim.models.spec import LoadedModel
from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import Strict
from edgeslim.recipe.state import PipelineContext, PipelineState


class PruneSettings(Strict):
    """Exactly one of ``ratio`` (channels removed per group) or ``macs_fraction`` (MACs kept)."""

    ratio: float | None = Field(None, ge=0, lt=1)
    macs_fraction: float | None = Field(None, gt=0, le=1)
    criterion: str = "l1"
    global_ranking: bool = False
    # kept widths: multiples of this; "auto" measures what the runtime favours (1: exact)
    round_to: int | Literal["auto"] = "auto"
    min_channels: int = Field(1, ge=1)
    ignore: list[str] = Field(default_factory=list)
    overrides: dict[str, float] = Field(default_factory=dict)
    calib_batches: int = Field(4, ge=1)
    mode: Literal["structured"] = "structured"

    @model_validator(mode="after")
    def _one_target(self) -> PruneSettings:
        if (self.ratio is None) == (self.macs_fraction is None):
            raise ValueError("give exactly one of ratio or macs_fraction")
        if self.round_to != "auto" and self.round_to < 1:
            raise ValueError("round_to must be 'auto' or an integer >= 1")
        return self


def prune_config(s: PruneSettings, target_macs: int | None, seed: int, round_to: int | None = None):
    from edgeslim.prune.config import PruneConfig

    return PruneConfig(
        ratio=s.ratio if target_macs is None else None,
        target_macs=target_macs,
        criterion=s.criterion,
        global_ranking=s.global_ranking,
        round_to=s.round_to if round_to is None else round_to,
        min_channels=s.min_channels,
        ignore=tuple(s.ignore),
        overrides=tuple(s.overrides.items()),
        calib_batches=s.calib_batches,
        seed=seed,
    )


@register_stage("prune", PruneSettings, "remove channels physically across coupled layers")
def run(state: PipelineState, s: PruneSettings, ctx: PipelineContext) -> PipelineState:
    from tqdm import tqdm

    from edgeslim.bench.macs import count_macs
    from edgeslim.prune.align import resolve_alignment
    from edgeslim.prune.structured import prune_

    lm = state.lm
    example = lm.require_input().example(batch=2)
    target = None
    if s.macs_fraction is not None:
        target = int(s.macs_fraction * count_macs(lm.model, example)[0])
    data = ctx.loader("train", 64) if ctx.recipe.data else None
    align = resolve_alignment(lm.model, example[:1], s.round_to, threads=ctx.recipe.measure.threads)
    if ctx.progress:
        tqdm.write(align.line())
    res = prune_(lm.model, example, prune_config(s, target, ctx.seed, align.round_to), data)
    notes = {**state.notes, "prune": res.summary(), "alignment": align.to_dict()}
    new = LoadedModel(res.model, lm.source, lm.input, lm.name, lm.meta, lm.methods)
    return PipelineState(new, None, state.layers, notes)
