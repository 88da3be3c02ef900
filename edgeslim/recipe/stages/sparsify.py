"""``sparsify`` stage: zero weights (magnitude, AGP, N:M, R-TOSS) and keep them zero.

The masks stay on the pipeline's model as parametrizations (a later ``finetune``
keeps the zeros; the checkpoint reloads them by replaying the method), the
deployable ONNX is exported from a squashed copy (dense, as ONNX Runtime runs
it), and the compressed archive ``weights.esz`` is written to the stage's
directory with its size in the notes. No speed gain is claimed.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from edgeslim.core.errors import EdgeslimError
from edgeslim.models.spec import LoadedModel
from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import Strict
from edgeslim.recipe.state import PipelineContext, PipelineState


class SparsifySettings(Strict):
    """``method`` and, for magnitude / agp, ``sparsity``; ``epochs`` of masked fine-tuning."""

    method: Literal["magnitude", "taylor", "agp", "nm", "rtoss-3ep", "rtoss-2ep", "patterns"]
    sparsity: float | None = Field(None, ge=0, lt=1)
    nm: str = "2:4"
    scope: Literal["layer", "global"] = "layer"
    parent_child: bool = Field(
        True, description="R-TOSS: children reuse their parent's patterns (the paper)"
    )
    epochs: int = Field(0, ge=0, description="fine-tuning with the masks (agp: while they grow)")
    lr: float = Field(0.01, gt=0)
    batch_size: int = Field(128, ge=1)
    values: Literal["int8", "kmeans", "float"] = "int8"
    codebook_bits: int = Field(4, ge=1, le=8)  # of values: kmeans
    ignore: list[str] = Field(default_factory=list)  # layers (names or regexes) kept dense

    @model_validator(mode="after")
    def _plan(self) -> SparsifySettings:
        from edgeslim.workflows.sparsify import sparsity_plan

        try:
            sparsity_plan(self.method, self.sparsity, self.nm, self.scope, self.parent_child)
        except EdgeslimError as e:
            raise ValueError(str(e)) from None
        if self.method == "agp" and self.epochs < 1:
            raise ValueError("method agp grows the masks while fine-tuning: set epochs >= 1")
        return self


@register_stage("sparsify", SparsifySettings, "zero weights (magnitude, agp, N:M, R-TOSS)")
def run(state: PipelineState, s: SparsifySettings, ctx: PipelineContext) -> PipelineState:
    from edgeslim.bench.macs import zero_fraction
    from edgeslim.sparsity import Sparsifier, sparsity_of
    from edgeslim.sparsity.archive import save_archive
    from edgeslim.train.config import TrainConfig
    from edgeslim.workflows.sparsify import agp_schedule, sparsity_plan

    plan = sparsity_plan(s.method, s.sparsity, s.nm, s.scope, s.parent_child)
    lm = state.lm
    tcfg = TrainConfig(epochs=max(s.epochs, 1), lr=s.lr, batch_size=s.batch_size, seed=ctx.seed)
    schedule = None
    if plan.scheduled:
        steps = s.epochs * math.ceil(len(ctx.dataset("train", augment=True)) / s.batch_size)
        schedule = agp_schedule(plan.config.sparsity, steps)
    sp = Sparsifier(plan.config, schedule=schedule, overrides=[(p, None) for p in s.ignore])
    calib = ctx.loader("train", 64) if ctx.recipe.data else None
    if calib is None and plan.config.kind in ("patterns", "rtoss") and lm.input is not None:
        # the channel permutation (patterns) and R-TOSS's parent-child groups are traced on it
        calib = [lm.input.example()]
    if plan.config.kind == "taylor":
        ctx.require_data("sparsify")
    sp.prepare(lm.model, calib=calib)
    if s.epochs:
        from edgeslim.train.trainer import Trainer

        ctx.require_data("sparsify")
        Trainer(
            lm.model,
            tcfg,
            progress=ctx.progress,
            task=ctx.task,
            on_step=sp.step if schedule else None,
        ).fit(ctx.dataset("train", augment=True), ctx.dataset("val"))
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    archive = save_archive(
        lm.model, ctx.work_dir / "weights.esz", values=s.values, bits=s.codebook_bits
    )
    layers = {k: dict(v) for k, v in state.layers.items()}
    for name in sp.record.layers:
        layers.setdefault(name, {})["sparsity"] = round(sparsity_of(lm.model, [name]), 6)
    notes = {
        **state.notes,
        "sparsify": {
            "method": s.method,
            "kind": plan.config.kind,
            "masked_sparsity": sparsity_of(lm.model),
            "all_weights_sparsity": zero_fraction(lm.model),
            "archive_bytes": archive.size_bytes,
            "archive_values": s.values,
            "archive_bits": s.codebook_bits,
            "speedup_claimed": False,
        },
    }
    methods = [*lm.methods, sp.record.to_dict()]
    new = LoadedModel(lm.model, lm.source, lm.input, lm.name, lm.meta, methods)
    return PipelineState(new, None, layers, notes)
