"""``search`` stage: choose a per-layer policy under the recipe's budget, apply it, verify it.

The budget is the recipe's ``targets``: ``latency_ms`` (ONNX Runtime median at
``targets.batch``, with ``measure.threads``), ``macs`` and ``size_bytes``. The
stage measures every candidate, solves an MILP, prunes physically and measures
the result as it will be deployed (INT8 QDQ when a ``quantize`` stage follows);
see :mod:`edgeslim.search`. Layers it keeps in float are recorded in
``notes["search"]["float_layers"]``, and layers it gives fewer weight bits
(``low_bits``: bit-width as one more decision of the same MILP, see
:mod:`edgeslim.search.low_bits`) in ``notes["search"]["low_bits"]``; the
``quantize`` stage honours both. An
impossible budget is reported (``impossible: true``, the reason, the closest
point) and the pipeline continues with that closest model. Fine-tuning is the
next stage's job (``distill`` or ``finetune``).
"""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import Field, field_validator
from tqdm import tqdm

from edgeslim.core.errors import EdgeslimError
from edgeslim.models.spec import LoadedModel
from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import Recipe, Strict, Targets
from edgeslim.recipe.stages.quantize import QuantizeSettings, ptq_config
from edgeslim.recipe.state import PipelineContext, PipelineState


class SearchSettings(Strict):
    """Candidates, accuracy probe and measurement effort of the search."""

    ratios: list[float] = Field(  # 0 (leave the group alone) is always added
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75], description="channel ratios per group"
    )
    criterion: str = "l1"  # which channels of a group go (see `edgeslim prune --help`)
    # candidate widths: multiples of this ("auto": what the runtime's staircase favours)
    round_to: int | Literal["auto"] = "auto"
    min_channels: int = Field(1, ge=1)
    ignore: list[str] = Field(default_factory=list)  # layers whose output channels stay
    int8: bool | None = Field(None, description="latency as INT8 QDQ; default: a quantize follows")
    float_fallback: int = Field(2, ge=0, description="at most this many layers kept in float")
    fallback_min_loss: float = Field(0.01, ge=0, description="nats of val loss INT8 must cost")
    sensitivity_batches: int = Field(4, ge=1)  # validation batches per candidate
    batch_size: int = Field(128, ge=1)
    latency_runs: int = Field(30, ge=3)  # timed runs per candidate and pass (two passes)
    latency_margin: float = Field(0.1, ge=0, lt=0.5, description="aim this fraction under")
    max_probes: int = Field(48, ge=2, description="deployed candidates timed at most")
    max_rounds: int = Field(6, ge=1)  # policies applied and measured at most
    # bit-width as one more decision (INT8 only): these layers may take ``low_bits``-bit
    # weights, stored packed as INT4; ORT runs them as float convs (size, not speed)
    low_bits: Literal[2, 3, 4] | None = None
    low_bit_layers: int = Field(8, ge=1, description="layers offered low bits, largest first")

    @field_validator("round_to")
    @classmethod
    def _round_to(cls, v: int | str) -> int | str:
        if v != "auto" and v < 1:
            raise ValueError("round_to must be 'auto' or an integer >= 1")
        return v

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: list[float]) -> list[float]:
        if any(not 0 <= r < 1 for r in v):
            raise ValueError("every ratio must be in [0, 1)")
        out = sorted({0.0, *v})
        if len(out) < 2:
            raise ValueError("give at least one ratio above 0")
        return out


def budgets(t: Targets) -> dict[str, float]:
    """The cost budgets the recipe's targets set; a clear error when there are none."""
    out = {
        k: float(v)
        for k, v in (("latency_ms", t.latency_ms), ("macs", t.macs), ("size_bytes", t.size_bytes))
        if v is not None
    }
    if not out:
        raise EdgeslimError(
            "stage 'search' needs a budget: set targets.latency_ms, targets.macs or "
            "targets.size_bytes in the recipe"
        )
    return out


def _quantize_settings(recipe: Recipe) -> QuantizeSettings | None:
    raw = next((e["quantize"] for e in recipe.stages if "quantize" in e), None)
    return None if raw is None else QuantizeSettings.model_validate(raw)


def _depends(recipe: Recipe) -> dict:
    """The search's result depends on the budget, the timing threads and the quantize stage."""
    q = _quantize_settings(recipe)
    return {
        "targets": recipe.targets.model_dump(),
        "threads": recipe.measure.threads,
        "quantize": q.model_dump() if q else None,
    }


@register_stage(
    "search",
    SearchSettings,
    "choose per-group pruning ratios and float layers under the targets' budget (MILP)",
    depends=_depends,
)
def run(state: PipelineState, s: SearchSettings, ctx: PipelineContext) -> PipelineState:
    from edgeslim.prune.align import resolve_alignment
    from edgeslim.prune.config import PruneConfig
    from edgeslim.search import CandidateConfig, Deployment, SearchConfig, search
    from edgeslim.workflows.quantize import calibration_loader

    limits = budgets(ctx.recipe.targets)
    data = ctx.require_data("search")
    q = _quantize_settings(ctx.recipe)
    int8 = s.int8 if s.int8 is not None else q is not None
    q = q or QuantizeSettings()
    lm = state.lm
    spec = lm.require_input()
    val = list(itertools.islice(ctx.loader("val", s.batch_size), s.sensitivity_batches))
    calib = list(itertools.islice(calibration_loader(data), q.calib_batches)) if int8 else None
    deploy = Deployment(
        spec,
        int8,
        ptq_config(q),
        tuple(b[0] for b in (calib or [])[:1]),
        ctx.recipe.targets.batch,
        ctx.recipe.measure.threads,
        s.latency_runs,
        search_runtime(ctx.recipe.targets.runtime),
    )
    align = resolve_alignment(
        lm.model, spec.example(batch=1), s.round_to, threads=ctx.recipe.measure.threads
    )
    if ctx.progress:
        tqdm.write(align.line())
    prune = PruneConfig(
        ratio=0.0,
        criterion=s.criterion,
        round_to=align.round_to,
        min_channels=s.min_channels,
        ignore=tuple(s.ignore),
        seed=ctx.seed,
    )
    cfg = SearchConfig(
        CandidateConfig(
            tuple(s.ratios),
            prune,
            frozenset(limits),
            s.float_fallback,
            s.fallback_min_loss,
            s.max_probes,
            ctx.task,
            s.low_bits if int8 else None,
            s.low_bit_layers,
        ),
        limits,
        s.latency_margin,
        s.max_rounds,
    )
    res = search(
        lm.model,
        spec.example(batch=2),
        cfg,
        val,
        deploy,
        data=ctx.loader("train", 64),
        calib=calib,
        progress=ctx.progress,
    )
    tqdm.write(res.message)
    layers = {k: dict(v) for k, v in state.layers.items()}
    for name, drop in res.sensitivity.items():
        layers.setdefault(name, {})["sensitivity"] = drop
    new = LoadedModel(res.model, lm.source, lm.input, lm.name, lm.meta, lm.methods)
    notes = {**res.notes, "alignment": align.to_dict()}
    return PipelineState(new, None, layers, {**state.notes, "search": notes})


def search_runtime(runtime: str) -> str:
    """The ONNX runtime the search times candidates on.

    A named ONNX runtime is used as is. ``best`` is only decided on the final model
    (:func:`edgeslim.recipe.measure.pick_deploy`), so the search times on ONNX Runtime,
    the default, and so do the torch runtimes, which have no INT8 path.
    """
    from edgeslim.export.runtimes import get_runtime

    if runtime != "best" and get_runtime(runtime).artifact == "onnx":
        return runtime
    return "onnxruntime"
