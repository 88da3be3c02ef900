"""``earlyexit`` stage: FastBERT branches on the current BERT, exported and measured.

The backbone is frozen and a branch per layer is self-distilled from the final
classifier (Liu et al., ACL 2020); the model is then written as one ONNX graph
per exit point, run in sequence (``earlyexit/`` in the stage's directory), and
every test sample is timed at each threshold against the whole model as one
graph: ``report.md``, ``report.json`` and ``accuracy_latency.png`` beside it.
The stage leaves the model's weights as they were.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import TrainSettings
from edgeslim.recipe.state import PipelineContext, PipelineState


class EarlyExitSettings(TrainSettings):
    epochs: int = Field(3, ge=1)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    weight_decay: float = Field(0.01, ge=0)
    temperature: float = Field(1.0, gt=0, description="of the branch KL (the paper: 1)")
    branch: Literal["cls", "attn"] = Field(
        "attn", description="cls: a head on [CLS]; attn: the paper's 2-head attention branch"
    )
    threshold: float = Field(0.3, ge=0, le=1, description="the manifest's default threshold")
    thresholds: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8], description="thresholds to measure"
    )
    repeats: int = Field(3, ge=1, description="timed passes over the test set")
    limit: int | None = Field(None, ge=1, description="time only the first N test samples")


@register_stage(
    "earlyexit", EarlyExitSettings, "FastBERT exits: branches, one ONNX graph per exit, measured"
)
def run(state: PipelineState, s: EarlyExitSettings, ctx: PipelineContext) -> PipelineState:
    from dataclasses import replace

    from edgeslim.bench.early_exit import best_within
    from edgeslim.core.errors import EdgeslimError
    from edgeslim.recipe.deploy import is_fake_quantized
    from edgeslim.workflows.fastbert import measure_fastbert, train_fastbert, write_fastbert_report

    data = ctx.require_data("earlyexit")
    if is_fake_quantized(state.lm.model):
        raise EdgeslimError("stage 'earlyexit' needs a float BERT: put it before 'quantize'")
    cfg = replace(s.train_config(ctx.seed), optimizer="adamw", augment=False)
    res = train_fastbert(
        state.lm, data, cfg, temperature=s.temperature, branch=s.branch, progress=ctx.progress
    )
    report = measure_fastbert(
        res, data, ctx.work_dir, s.thresholds, threshold=s.threshold,
        repeats=s.repeats, threads=1, limit=s.limit,
    )  # fmt: skip
    write_fastbert_report(report, ctx.work_dir, f"FastBERT early exit on {data}")
    best = best_within(report["sweep"], 1.0)
    notes = {**state.notes, "earlyexit": str(ctx.work_dir / "earlyexit")}
    if best is not None:
        notes["earlyexit_best"] = {k: best[k] for k in ("threshold", "speedup", "accuracy")}
    return PipelineState(state.lm, state.onnx, state.layers, notes)
