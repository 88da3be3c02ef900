"""Structured pruning verbs: ``prune`` (returns a new model) and ``prune_`` (in place).

1. capture the graph and find dependency groups (:mod:`edgeslim.graph`);
2. score every unit with a criterion, aggregated over its coupled layers;
3. allocate: a channel ratio, or the ratio that reaches a MACs target (bisection on
   exact MAC counts of the physically pruned candidate), or a measured ONNX Runtime
   latency target (prune in MACs steps, export, time, continue until it is met);
4. remove the channels physically and check the result against the masked dense
   model (``verify``): a mismatch raises instead of returning a broken model.
"""

from __future__ import annotations

import copy
import math
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeslim.bench.macs import count_macs, count_params
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.finite import check_finite_model, check_finite_tensor
from edgeslim.core.modes import eval_mode
from edgeslim.graph.attention import convert_mha_
from edgeslim.graph.groups import DependencyGraph, build_dependency_graph
from edgeslim.prune.align import Alignment, resolve_alignment
from edgeslim.prune.allocate import Plan, allocate, unit_channels
from edgeslim.prune.config import PruneConfig
from edgeslim.prune.criteria import CRITERIA
from edgeslim.prune.importance import activation_stats, gradient_stats, group_scores
from edgeslim.prune.remove import mask_, output_diffs_of, remove_


@dataclass
class PruneResult:
    """The pruned model and what was done to it."""

    model: nn.Module
    plan: Plan
    graph: DependencyGraph
    ratio: float  # channel ratio finally applied
    macs: tuple[int, int]  # before, after
    params: tuple[int, int]  # before, after
    max_abs_diff: float | None  # pruned vs masked dense (None when not verified)
    steps: list[dict] = field(default_factory=list)  # latency-target steps
    alignment: Alignment | None = None  # the kept-width multiple used, and why

    def summary(self) -> str:
        (m0, m1), (p0, p1) = self.macs, self.params
        removed = sum(len(u) for u in self.plan.values())
        return (
            f"removed {removed} channel units in {len(self.plan)} of "
            f"{len(self.graph.groups)} groups; params {p0:,} -> {p1:,} "
            f"({p1 / p0:.1%}); MACs {m0:,} -> {m1:,} ({m1 / m0:.1%})"
        )


def prune(
    model: nn.Module, example: torch.Tensor, config: PruneConfig, data: Iterable | None = None
) -> PruneResult:
    """Return a pruned copy of ``model``; ``model`` itself is not modified.

    Args:
        model: any ``nn.Module`` that ``torch.export`` can capture.
        example: one input batch (shapes are traced with it).
        config: target, criterion and allocation.
        data: batches (``x`` or ``(x, y)``) for data-driven criteria.

    Example:
        >>> from edgeslim.models import build_zoo_model
        >>> m = build_zoo_model("resnet20")
        >>> res = prune(m, torch.randn(1, 3, 32, 32), PruneConfig(ratio=0.5, criterion="l1"))
        >>> res.model.conv1.out_channels, m.conv1.out_channels
        (8, 16)
    """
    return prune_(copy.deepcopy(model), example, config, data)


def prune_(
    model: nn.Module, example: torch.Tensor, config: PruneConfig, data: Iterable | None = None
) -> PruneResult:
    """Prune ``model`` in place (see :func:`prune`); returns the result record.

    ``nn.MultiheadAttention`` layers are swapped for the equivalent
    :class:`~edgeslim.graph.attention.HeadPrunableMHA` first, so heads can go.

    Example:
        >>> from edgeslim.models import build_zoo_model
        >>> m = build_zoo_model("resnet20")
        >>> _ = prune_(m, torch.randn(1, 3, 32, 32), PruneConfig(ratio=0.25, round_to=4))
        >>> m.conv1.out_channels
        12
    """
    with eval_mode(model):  # each submodule's mode comes back, swapped-in MHAs included
        return _prune(model, example, config, data)


def _prune(model, example, cfg: PruneConfig, data) -> PruneResult:
    # NaN weights make NaN scores, which rank anywhere: refuse them by name
    check_finite_model(model, "model to prune")
    check_finite_tensor(example, "the example input")
    align = resolve_alignment(model, example, cfg.round_to)
    cfg = replace(cfg, round_to=align.round_to)
    convert_mha_(model)
    graph = build_dependency_graph(model, example, strict=cfg.strict)
    scores = group_scores(
        model, graph, CRITERIA.get(cfg.criterion), collect_stats(model, graph, cfg, data), cfg.seed
    )
    macs0, params0 = count_macs(model, example)[0], count_params(model)
    steps: list[dict] = []
    if cfg.ratio is not None:
        ratio, plan = cfg.ratio, allocate(graph, scores, cfg, cfg.ratio)
    elif cfg.target_macs is not None:
        ratio, plan = ratio_for_macs(model, graph, scores, cfg, example, cfg.target_macs)
    else:
        ratio, plan, steps = ratio_for_latency(model, graph, scores, cfg, example, macs0)
    masked = None
    if cfg.verify:
        masked = mask_(copy.deepcopy(model), graph, plan)
    remove_(model, graph, plan)
    diff = None
    if masked is not None:
        diff = check_against_masked(model, masked, example)
    macs1 = count_macs(model, example)[0]
    return PruneResult(
        model,
        plan,
        graph,
        ratio,
        (macs0, macs1),
        (params0, count_params(model)),
        diff,
        steps,
        align,
    )


def check_against_masked(pruned: nn.Module, masked: nn.Module, example: torch.Tensor) -> float:
    """The oracle: every output of ``pruned`` equals the masked dense model's; worst diff.

    Each named output (:mod:`edgeslim.core.outputs`) must agree within
    ``1e-4 * max(1, |output|max)`` of its own scale, and keep its shape.
    """
    diffs = output_diffs_of(pruned, masked, example)
    if not diffs:
        raise EdgeslimError(
            "pruning changed the number or the shapes of the model's outputs; an output "
            "layer was pruned (keep it with --ignore)"
        )
    for name, (diff, scale) in diffs.items():
        if not diff <= 1e-4 * max(1.0, scale):
            raise EdgeslimError(
                f"pruning changed the model's function on output {name!r} (max |pruned - "
                f"masked| = {diff:.3g}); an op in the model computes with hard-coded channel "
                "counts. Ignore the layers around it (--ignore) or register a handler "
                "(edgeslim.graph.register_op)"
            )
    return max(d for d, _ in diffs.values())


def collect_stats(
    model: nn.Module, graph: DependencyGraph, cfg: PruneConfig, data: Iterable | None
) -> dict:
    """Gradients or activations for data-driven criteria (nothing for weight criteria)."""
    needs = CRITERIA.get(cfg.criterion).needs
    if needs == "weights":
        return {}
    if data is None:
        raise EdgeslimError(f"criterion {cfg.criterion!r} needs data (batches of inputs)")
    batches = []
    for i, b in enumerate(data):
        if i >= cfg.calib_batches:
            break
        batches.append(b)
    if needs == "gradients":
        return {"grad": gradient_stats(model, batches)}
    return {"act": activation_stats(model, graph, batches)}


def _candidate(model, graph, plan) -> nn.Module:
    return remove_(copy.deepcopy(model), graph, plan)


def ratio_for_macs(
    model, graph, scores, cfg: PruneConfig, example, target: int, iters: int = 11
) -> tuple[float, Plan]:
    """Smallest channel ratio whose pruned model has at most ``target`` MACs (bisection)."""

    def macs_at(r: float) -> tuple[int, Plan]:
        plan = allocate(graph, scores, cfg, r)
        return count_macs(_candidate(model, graph, plan), example)[0], plan

    hi = 0.97
    macs_hi, plan_hi = macs_at(hi)
    if macs_hi > target:
        raise EdgeslimError(
            f"cannot reach {target:,} MACs: removing all it may leaves {macs_hi:,} "
            "(pinned or ignored layers); lower the target or ignore fewer layers"
        )
    lo, best, best_macs = 0.0, (hi, plan_hi), macs_hi
    for _ in range(iters):
        mid = (lo + hi) / 2
        m, plan = macs_at(mid)
        if m <= target:
            hi, best, best_macs = mid, (mid, plan), m
        else:
            lo = mid
    if best_macs < FILL_BELOW * target:
        return best[0], fill_plan(model, graph, scores, cfg, example, target, best[1])
    return best


FILL_BELOW = 0.95  # a MAC target missed by more than this fraction is filled back up
FILL_PASSES = 8


def fill_plan(model, graph, scores, cfg: PruneConfig, example, target: int, plan: Plan) -> Plan:
    """Give removed units back, the best-scored first, while the MACs stay within ``target``.

    With ``round_to`` the MACs are a step function of the ratio: narrow groups (the
    12-144 wide ranks of a factorized layer) jump a whole alignment block at once, so
    the least ratio that meets a target can land far below it (ResNet-18-small after
    spatial SVD: asked 72%, got 42%). Each pass offers every pruned group one aligned
    block back (``round_to`` channels, or what is left of the group) and keeps it when
    the model still fits; it stops after a pass that gave nothing back.
    """
    plan = dict(plan)
    for _ in range(FILL_PASSES):
        grew = False
        for gi in sorted(plan):
            removed = plan[gi]
            group = graph.groups[gi]
            rt = cfg.round_to if isinstance(cfg.round_to, int) else 1
            step = max(1, rt // math.gcd(rt, unit_channels(group)))
            kept = group.size - len(removed)
            k = len(removed) if kept + step >= group.size else step
            order = removed[np.argsort(-np.asarray(scores[gi])[removed], kind="stable")]
            rest = np.sort(order[k:])
            trial = {**plan, gi: rest} if len(rest) else {g: p for g, p in plan.items() if g != gi}
            if count_macs(_candidate(model, graph, trial), example)[0] <= target:
                plan, grew = trial, True
        if not grew:
            break
    return plan


def ratio_for_latency(model, graph, scores, cfg: PruneConfig, example, macs0: int, refine: int = 3):
    """The least pruning whose ONNX Runtime batch-1 median meets ``cfg.target_latency_ms``.

    Prunes in steps of ``cfg.latency_step`` of the MACs from the original, exporting and
    timing each candidate, until one meets the target; then bisects ``refine`` times
    between the last step that missed and the first that met, so the target is met with
    the fewest channels removed. Plans are allocated with ``cfg.round_to``, so every
    candidate sits on a step of the runtime's latency staircase; a candidate whose plan
    was already timed is not timed again.
    """
    from edgeslim.bench.latency import measure, onnx_target
    from edgeslim.export.onnx import export_onnx
    from edgeslim.models.inputs import InputSpec

    spec = InputSpec(tuple(example.shape), "float32")
    steps: list[dict] = []
    timed: dict[tuple, float] = {}

    def at(frac: float, d: str, refining: bool) -> tuple[float, Plan, float]:
        ratio, plan = ratio_for_macs(model, graph, scores, cfg, example, int(frac * macs0))
        key = tuple(sorted((g, tuple(int(u) for u in units)) for g, units in plan.items()))
        if key not in timed:
            cand = _candidate(model, graph, plan)
            path = export_onnx(cand, spec, Path(d) / f"step{len(steps)}.onnx").path
            rep = measure([onnx_target(path, "candidate", spec)], (1,), runs=20, progress=False)
            timed[key] = rep.median("candidate", 1)
            steps.append(
                {
                    "macs_fraction": frac,
                    "ratio": ratio,
                    "latency_ms": timed[key],
                    "refine": refining,
                }
            )
        return ratio, plan, timed[key]

    frac, missed = 1.0, 1.0
    with tempfile.TemporaryDirectory() as d:
        while True:
            frac = round(frac - cfg.latency_step, 6)
            if frac <= 0.02:
                raise EdgeslimError(
                    f"cannot reach {cfg.target_latency_ms} ms: last step measured "
                    f"{steps[-1]['latency_ms']:.3f} ms"
                    if steps
                    else "latency target unreachable"
                )
            ratio, plan, ms = at(frac, d, False)
            if ms <= cfg.target_latency_ms:
                break
            missed = frac
        best, met = (ratio, plan), frac
        for _ in range(refine):
            mid = round((missed + met) / 2, 6)
            ratio, plan, ms = at(mid, d, True)
            if ms <= cfg.target_latency_ms:
                best, met = (ratio, plan), mid
            else:
                missed = mid
    return best[0], best[1], steps
