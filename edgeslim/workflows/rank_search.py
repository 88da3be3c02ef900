"""Ranks chosen by the budget search: measured latency and damage per candidate, then the MILP.

``edgeslim decompose --search --target-macs M`` (or ``--latency-budget F``). For
every layer the factorization can take, a few candidate ranks (the ranks of
:class:`~edgeslim.lowrank.ranks.RankRule` ``ratio`` at each of ``fractions``,
duplicates dropped) are each

* factorized and swapped into the model alone, and the damage measured with the
  caller's ``damage`` function (validation-loss increase on a few batches, or the
  relative error of the model's output when there are no labels), floored at 0 (a
  loss that falls on a few batches is noise, not a gain to spend on compressing
  more). The budget is an upper bound: where the low ranks cost no measurable damage,
  the least-damage policy lies below it (the signs ResNet-18 at a 50% budget: 39%), unless
  ``RankSearch.fill`` asks for a floor too;
* counted exactly (MACs and parameters of the layer at its real input shape);
* timed against the dense layer on FP32 ONNX Runtime at that input shape, with the
  same interleaved pair timing and cache as ``--measured``
  (:func:`edgeslim.workflows.lowrank_measured.timed_pair`).

The candidates go to the channel search's MILP (:mod:`edgeslim.search.ranks`,
:mod:`edgeslim.search.milp`): least total damage within the budget, and a form not
measured ``margin`` faster than the dense layer is never chosen. The chosen layers
are factorized again with their own ``ratio`` rule (the same rank as measured),
so the record replays on load like any ``decompose``.

The latency budget is a fraction of the summed dense ms of the timed layers (their
sum is the part of the model's time the search can change; layers are timed alone,
without the fusions ORT makes across them, so it is an estimate and reported as one).
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from edgeslim.bench.macs import count_macs, count_params
from edgeslim.core.errors import EdgeslimError, UnsupportedLayerError
from edgeslim.core.methods import Applied, FilterFn, LayerPlan, MethodConfig, apply, method_for
from edgeslim.core.modes import eval_mode
from edgeslim.core.select import swap_module_
from edgeslim.lowrank.ranks import RankRule
from edgeslim.lowrank.swap import one_blas_thread
from edgeslim.search.candidates import Batch, damage
from edgeslim.search.ranks import DENSE, LayerOptions, RankOption, choose_ranks
from edgeslim.workflows.lowrank_measured import MeasuredRule, input_shapes, timed_pair

Damage = Callable[[nn.Module], float]  # damage(model with one layer factorized) -> float
DEFAULT_FRACTIONS = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75)
TIE_BREAK = 1e-9  # damage per fraction of the layer's parameters removed


@dataclass(frozen=True)
class RankSearch:
    """The budget and how candidates are made and timed.

    Attributes:
        target_macs: MACs of the result, or a fraction <= 1 of the input's.
        latency_fraction: the timed layers' summed ms, as a fraction of their dense ms.
        fractions: candidate ranks: the ``ratio`` rank at each parameter fraction.
        timing: margin, runs, threads and cache of the ONNX Runtime pair timing
            (``time_pair`` replaces it in tests).
        fill: spend at least this fraction of the budget (0: the budget is only a
            ceiling). With 0.95 and a 50% MAC budget the result has 47.5-50% of the
            MACs; without it, layers whose low ranks measure no damage can take the
            policy far below the budget (the signs ResNet-18: 39%). Where no policy of
            the measured candidates lands in that band, the search says so in
            ``details["search"]["fill"]`` and falls back to the ceiling alone.
    """

    target_macs: float | None = None
    latency_fraction: float | None = None
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    timing: MeasuredRule = field(default_factory=MeasuredRule)
    fill: float = 0.0

    def __post_init__(self) -> None:
        if (self.target_macs is None) == (self.latency_fraction is None):
            raise EdgeslimError("the rank search needs exactly one of target_macs, latency budget")
        if self.latency_fraction is not None and not 0 < self.latency_fraction <= 1:
            raise EdgeslimError(f"latency budget must be in (0, 1], got {self.latency_fraction}")
        if self.target_macs is not None and self.target_macs <= 0:
            raise EdgeslimError(f"target MACs must be positive, got {self.target_macs}")
        if not self.fractions or not all(0 < f < 1 for f in self.fractions):
            raise EdgeslimError(f"candidate fractions must be in (0, 1), got {self.fractions}")
        if not 0 <= self.fill <= 1:
            raise EdgeslimError(f"fill is a fraction of the budget in [0, 1], got {self.fill}")


def loss_damage(batches: list[Batch], task: str = "classification") -> Damage:
    """Damage = increase of the task's mean loss on ``batches`` (labelled)."""
    cache: dict[int, float] = {}

    def fn(model: nn.Module) -> float:
        return damage(model, batches, task)[0]

    def relative(model: nn.Module) -> float:
        return fn(model) - cache[0]

    def first(model: nn.Module) -> float:  # the dense loss, measured once
        if 0 not in cache:
            cache[0] = fn(model)
        return cache[0]

    relative.dense = first  # type: ignore[attr-defined]
    return relative


def output_damage(inputs: Sequence[torch.Tensor]) -> Damage:
    """Damage = ``||f'(x) - f(x)||^2 / ||f(x)||^2`` of the model's output on ``inputs``
    (no labels needed: the dense model's output is the reference)."""
    ref: list[torch.Tensor] = []

    def outs(model: nn.Module) -> list[torch.Tensor]:
        with eval_mode(model), torch.no_grad():
            return [model(x).float() for x in inputs]

    def first(model: nn.Module) -> float:
        if not ref:
            ref.extend(outs(model))
        return 0.0

    def relative(model: nn.Module) -> float:
        num = sum(float((o - r).pow(2).sum()) for o, r in zip(outs(model), ref, strict=True))
        den = sum(float(r.pow(2).sum()) for r in ref)
        return num / max(den, 1e-30)

    relative.dense = first  # type: ignore[attr-defined]
    return relative


def _layer_macs(module: nn.Module, shape: tuple[int, ...]) -> int:
    m = copy.deepcopy(module).to("meta")
    return count_macs(m, torch.zeros(shape, device="meta"))[0]


def rank_candidates(
    model: nn.Module,
    config: MethodConfig,
    example: torch.Tensor,
    dmg: Damage,
    search: RankSearch,
    *,
    filter_fn: FilterFn | None = None,
    progress: bool = False,
) -> tuple[list[LayerOptions], dict[str, dict[str, float]]]:
    """Every factorizable layer's options (dense first) and each option's ratio and rank."""
    handler = method_for(config)
    work = copy.deepcopy(model).eval()
    picked = [
        (n, m) for n, m, _ in LayerPlan(config, filter_fn=filter_fn).select(work, handler.supported)
    ]
    picked = [(n, m) for n, m in picked if n]
    shapes = input_shapes(work, example, [n for n, _ in picked]) if picked else {}
    getattr(dmg, "dense", lambda m: 0.0)(work)
    layers: list[LayerOptions] = []
    extra: dict[str, dict[str, float]] = {}
    for name, mod in picked:
        opts = [DENSE]
        seen: set = set()
        d_macs = _layer_macs(mod, shapes[name])
        for frac in search.fractions:
            cfg = replace(config, rule=RankRule(ratio=frac))
            try:
                with one_blas_thread():
                    res = handler.factorize(mod, cfg)
            except UnsupportedLayerError:
                break
            key = str(res.rank)
            if key in seen or res.params_after >= res.params_before:
                continue
            seen.add(key)
            swap_module_(work, name, res.module)
            try:
                measured = float(dmg(work))
            finally:
                swap_module_(work, name, mod)
            d_ms, f_ms, _source = timed_pair(mod, res.module, shapes[name], search.timing)
            label = f"ratio {frac:g} rank {key}"
            # a loss that falls on a few batches is noise, not a gain: the MILP would
            # spend it on compressing more. Floor at 0; among equal damage the larger
            # rank wins (a tie-break far below any measured damage)
            hurt = max(measured, 0.0) + TIE_BREAK * (1 - res.params_after / res.params_before)
            opts.append(
                RankOption(
                    label,
                    hurt,
                    _layer_macs(res.module, shapes[name]) - d_macs,
                    res.params_after - res.params_before,
                    f_ms - d_ms,
                    f_ms <= (1 - search.timing.margin) * d_ms,
                )
            )
            extra[f"{name}|{label}"] = {
                "ratio": frac,
                "measured_damage": measured,
                "dense_ms": d_ms,
                "factorized_ms": f_ms,
            }
        if len(opts) > 1:
            layers.append(LayerOptions(name, tuple(opts)))
        if progress:
            print(f"rank search: {name}: {len(opts) - 1} candidates", flush=True)
    return layers, extra


def search_ranks(
    model: nn.Module,
    config: MethodConfig,
    example: torch.Tensor,
    dmg: Damage,
    search: RankSearch,
    *,
    filter_fn: FilterFn | None = None,
    progress: bool = False,
) -> Applied:
    """``model`` (untouched) factorized at the ranks the MILP chooses; details gain ``search``.

    Example:
        >>> # from edgeslim.lowrank import SpatialSVDConfig
        >>> # new, rec = search_ranks(m, SpatialSVDConfig(), x, output_damage([x]),
        >>> #                         RankSearch(target_macs=0.5))
    """
    layers, extra = rank_candidates(
        model, config, example, dmg, search, filter_fn=filter_fn, progress=progress
    )
    if not layers:
        raise EdgeslimError(f"{type(config).__name__}: no layer of the model can be factorized")
    macs0 = count_macs(copy.deepcopy(model).to("meta"), example.to("meta"))[0]
    dense_ms = 0.0
    for la in layers:
        first = next(e for k, e in extra.items() if k.startswith(la.name + "|"))
        dense_ms += first["dense_ms"]
    base = {"macs": float(macs0), "params": float(count_params(model)), "latency_ms": dense_ms}
    if search.target_macs is not None:
        t = search.target_macs
        budgets = {"macs": t * macs0 if t <= 1 else t}
    else:
        budgets = {"latency_ms": search.latency_fraction * dense_ms}
    floors = {k: search.fill * v for k, v in budgets.items()} if search.fill > 0 else None
    sol = choose_ranks(layers, base, budgets, floors)
    fill = None
    if floors is not None:
        fill = {"asked": search.fill, "floors": floors, "met": sol is not None}
        if sol is None:
            warnings.warn(
                f"the rank search cannot spend {search.fill:.0%} of the budget {budgets} with "
                "the measured candidates; it keeps the ceiling alone",
                stacklevel=2,
            )
            sol = choose_ranks(layers, base, budgets)
    if sol is None:
        least_macs = sum(min((o.macs for o in la.options if o.faster), default=0) for la in layers)
        least_ms = sum(min((o.ms for o in la.options if o.faster), default=0) for la in layers)
        raise EdgeslimError(
            f"the rank search cannot meet {budgets}: with only the forms measured faster than "
            f"the dense layers, the MACs fall to {macs0 + least_macs:.4g} at best (of "
            f"{macs0:.4g}) and the timed layers to {dense_ms + least_ms:.4g} ms (of "
            f"{dense_ms:.4g} ms); choose a larger budget or another method"
        )
    chosen = {
        la.name: extra[f"{la.name}|{la.options[j].label}"]["ratio"]
        for la, j in zip(layers, sol.choice, strict=True)
        if j > 0
    }
    overrides = [(re.escape(n), replace(config, rule=RankRule(ratio=r))) for n, r in chosen.items()]
    applied = apply(model, config, overrides=overrides, filter_fn=lambda m, n: False)
    table = {}
    for la, j in zip(layers, sol.choice, strict=True):
        table[la.name] = {
            "chosen": la.options[j].label,
            "options": [
                {
                    "label": o.label,
                    "damage": o.damage,
                    "macs": o.macs,
                    "ms": o.ms,
                    "faster": o.faster,
                    **extra.get(f"{la.name}|{o.label}", {}),
                }
                for o in la.options
            ],
        }
    rec = applied.record
    rec.details["search"] = {
        "budgets": budgets,
        "base": base,
        "predicted": sol.predicted,
        "predicted_damage": sol.objective,
        "fill": fill,
        "margin": search.timing.margin,
        "layers": table,
    }
    return applied


def first_batches(loader: Iterable, n: int) -> list:
    """The first ``n`` batches of ``loader`` (the damage batches)."""
    out = []
    for b in loader:
        out.append(b)
        if len(out) == n:
            break
    return out
