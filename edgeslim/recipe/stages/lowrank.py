"""``lowrank`` stage: factorize layers (SVD, Tucker-2, CP, spatial SVD, depthwise-separable).

The stage applies one :mod:`edgeslim.lowrank` config through the method registry
(:func:`edgeslim.workflows.decompose.decompose`), so the result is plain PyTorch
layers that a later ``prune``, ``distill``, ``quantize`` or ``export`` stage takes
as it is, and its record lets the saved model reload. Each factorized layer's rank
goes into the report's layer table.

With ``measured: true``, a layer stays factorized only where ONNX Runtime times its
factorized form at least ``margin`` faster than the dense layer at its real input
shape (:mod:`edgeslim.workflows.lowrank_measured`); both timings go into the layer
table (``dense_ms``, ``factorized_ms``).

With ``search: true`` and ``macs_fraction`` or ``latency_fraction``, each layer's
rank (or keeping it dense) is chosen by the channel search's MILP from measured
damage (validation-loss increase on the recipe's data) and measured ONNX Runtime
latency of a few candidate ranks (:mod:`edgeslim.workflows.rank_search`); a form not
measured ``margin`` faster than the dense layer is never chosen.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import Strict
from edgeslim.recipe.state import PipelineContext, PipelineState

RULES = ("rank", "energy", "ratio", "vbmf", "macs_fraction", "latency_fraction")


class LowRankSettings(Strict):
    """One factorization and exactly one rank rule.

    ``macs_fraction`` is the whole model's MACs kept (the per-layer ratio is bisected to
    reach it); the others are per-layer rules (:class:`edgeslim.lowrank.RankRule`).
    """

    method: Literal["svd", "tucker2", "cp", "spatial", "dws", "embedding"]
    rank: int | None = Field(None, ge=1)
    energy: float | None = Field(None, gt=0, le=1)
    ratio: float | None = Field(None, gt=0, le=1)
    vbmf: bool = False
    macs_fraction: float | None = Field(None, gt=0, le=1)
    latency_fraction: float | None = Field(
        None, gt=0, le=1, description="with search: the timed layers' ms kept, a fraction"
    )
    search: bool = False  # ranks by the MILP over measured damage and latency
    fill: float = Field(
        0.0, ge=0, le=1, description="with search: spend at least this fraction of the budget"
    )
    layers: list[str] = Field(default_factory=list)  # names or regexes; empty: every layer
    exclude: list[str] = Field(default_factory=list)
    measured: bool = False  # keep only the layers ONNX Runtime times faster factorized
    margin: float = Field(0.05, ge=0, lt=1)  # with measured: required saving of the dense ms
    share_groups: int | None = Field(
        None, ge=1, description="then share the layer stack's blocks in N groups (ALBERT)"
    )

    @model_validator(mode="after")
    def _one_rule(self) -> LowRankSettings:
        given = [k for k in RULES if getattr(self, k) not in (None, False)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(RULES)} (got {given or 'none'})")
        if self.search and given[0] not in ("macs_fraction", "latency_fraction"):
            raise ValueError("search spends a budget: give macs_fraction or latency_fraction")
        if self.latency_fraction is not None and not self.search:
            raise ValueError("latency_fraction is the rank search's budget: set search: true")
        if self.fill and not self.search:
            raise ValueError("fill is the rank search's floor: set search: true")
        if self.search and self.measured:
            raise ValueError("search times every candidate itself: drop measured")
        return self


@register_stage(
    "lowrank", LowRankSettings, "factorize layers: svd, tucker2, cp, spatial, dws, embedding"
)
def run(state: PipelineState, s: LowRankSettings, ctx: PipelineContext) -> PipelineState:
    from edgeslim.core.select import matches_any
    from edgeslim.lowrank import LayerSharingConfig, RankRule, config_for
    from edgeslim.workflows.decompose import decompose
    from edgeslim.workflows.lowrank_measured import MeasuredRule

    if s.macs_fraction is not None or s.latency_fraction is not None:
        rule = RankRule(ratio=1.0)  # replaced by the ratio that reaches the target
    else:
        rule = RankRule(rank=s.rank, energy=s.energy, ratio=s.ratio, vbmf=s.vbmf)

    def chosen(module, name: str) -> bool:
        inside = not s.layers or matches_any(name, s.layers)
        return inside and not matches_any(name, s.exclude)

    m = ctx.recipe.measure
    timing = MeasuredRule(margin=s.margin, runs=m.runs, threads=m.threads)
    measured = timing if s.measured else None
    rank_search = damage = None
    if s.search:
        from edgeslim.workflows.decompose import data_damage
        from edgeslim.workflows.rank_search import RankSearch

        rank_search = RankSearch(s.macs_fraction, s.latency_fraction, timing=timing, fill=s.fill)
        damage = data_damage(ctx.recipe.data) if ctx.recipe.data else None
    new, info = decompose(
        state.lm,
        config_for(s.method, rule),
        target_macs=None if s.search else s.macs_fraction,
        filter_fn=chosen,
        measured=measured,
        rank_search=rank_search,
        damage=damage,
        share=None if s.share_groups is None else LayerSharingConfig(groups=s.share_groups),
    )
    layers = {k: dict(v) for k, v in state.layers.items()}
    for name, d in info["layers"].items():
        layers.setdefault(name, {})["rank"] = d["rank"]
    for name, t in info.get("measured", {}).get("layers", {}).items():
        row = layers.setdefault(name, {})
        row["dense_ms"], row["factorized_ms"] = t["dense_ms"], t["factorized_ms"]
    searched = info["search"]["layers"] if s.search else {}
    for name, t in searched.items():
        opt = next(o for o in t["options"] if o["label"] == t["chosen"])
        if "dense_ms" in opt:
            row = layers.setdefault(name, {})
            row["dense_ms"], row["factorized_ms"] = opt["dense_ms"], opt["factorized_ms"]
    notes = {
        **state.notes,
        "lowrank": f"{s.method}: {len(info['layers'])} layers factorized, "
        f"{len(info['skipped'])} left alone, {info['params_before']} -> "
        f"{info['params_after']} parameters in those layers"
        + (
            f"; {len(info['sharing']['groups'])} shared blocks "
            f"({info['sharing']['params_before']} -> {info['sharing']['params_after']} "
            "model parameters; size only)"
            if "sharing" in info
            else ""
        ),
    }
    return PipelineState(new, None, layers, notes)
