"""A whole-model MAC target: the per-layer ``ratio`` rule that reaches it, by bisection.

Every layer's rank comes from its own rule; :class:`~edgeslim.lowrank.ranks.RankRule`
``ratio`` keeps a fraction of each factorized layer's parameters. For a target on
the whole model's MACs (``edgeslim decompose --target-macs``), the ratio is
bisected: each step builds only the *structure* each layer would get (ranks come
from cost functions, so no fit runs) and counts its MACs on the example input.
The MACs fall as the ratio falls, up to a layer being left alone when its
factors would not be smaller, so the bisection returns the largest ratio found
whose MACs are within the target.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
from torch import nn

from edgeslim.bench.macs import count_macs
from edgeslim.core.errors import EdgeslimError, UnsupportedLayerError
from edgeslim.core.methods import FilterFn, LayerPlan, MethodConfig, method_for
from edgeslim.core.select import swap_module_
from edgeslim.lowrank.ranks import RankRule
from edgeslim.lowrank.swap import n_params, one_blas_thread


def planned(model: nn.Module, config: MethodConfig, filter_fn: FilterFn | None = None) -> nn.Module:
    """A copy of ``model`` with the untrained structure each layer would get from ``config``.

    Only for counting: the weights of the swapped layers are random.
    """
    handler = method_for(config)
    out = copy.deepcopy(model)
    for name, mod, cfg in LayerPlan(config, filter_fn=filter_fn).select(out, handler.supported):
        if not name:
            continue
        try:
            with one_blas_thread():
                new = handler.structure(mod, handler.rank_of(mod, cfg))
        except UnsupportedLayerError:
            continue
        if n_params(new) < n_params(mod) or cfg.rule.allow_larger:
            swap_module_(out, name, new)
    return out


@dataclass(frozen=True)
class RatioForMacs:
    """The ratio found, the MACs it gives, the input's MACs and the bisection steps."""

    ratio: float
    macs: int
    input_macs: int
    steps: tuple[tuple[float, int], ...]


def ratio_for_macs(
    model: nn.Module,
    example: torch.Tensor,
    config: MethodConfig,
    target_macs: float,
    *,
    filter_fn: FilterFn | None = None,
    iters: int = 12,
) -> RatioForMacs:
    """The largest per-layer ``ratio`` whose factorized ``model`` has at most ``target_macs``.

    ``config`` is a low-rank config whose rule is replaced by ``RankRule(ratio=r)``;
    ``target_macs`` at most 1 is a fraction of the input's MACs.

    Example:
        >>> from edgeslim.lowrank import SVDConfig
        >>> m = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
        >>> r = ratio_for_macs(m, torch.zeros(1, 64), SVDConfig(), 0.5)
        >>> r.macs <= 0.5 * r.input_macs
        True
    """
    base = count_macs(model, example)[0]
    target = target_macs * base if target_macs <= 1 else target_macs
    if target <= 0:
        raise EdgeslimError(f"target MACs must be positive, got {target_macs}")

    def macs_at(ratio: float) -> int:
        cfg = replace(config, rule=RankRule(ratio=ratio, allow_larger=config.rule.allow_larger))
        # shapes are all MACs need: on the meta device the forward is 30x quicker
        return count_macs(planned(model, cfg, filter_fn).to("meta"), example.to("meta"))[0]

    steps: list[tuple[float, int]] = []

    def probe(ratio: float) -> int:
        m = macs_at(ratio)
        steps.append((ratio, m))
        return m

    lo, hi = 1e-3, 1.0
    if (m_hi := probe(hi)) <= target:
        return RatioForMacs(hi, m_hi, base, tuple(steps))
    if (m_lo := probe(lo)) > target:
        raise EdgeslimError(
            f"{type(config).__name__} cannot reach {target:.3g} MACs: its smallest "
            f"factorization has {m_lo:.3g} (the input has {base:.3g}); choose other layers "
            "or a larger target"
        )
    for _ in range(iters):
        mid = (lo + hi) / 2
        if probe(mid) <= target:
            lo, m_lo = mid, steps[-1][1]
        else:
            hi = mid
    return RatioForMacs(lo, m_lo, base, tuple(steps))
