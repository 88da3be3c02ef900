"""Search under a budget: solve, apply, measure, tighten, and say plainly when it cannot be met.

1. measure every candidate (:mod:`edgeslim.search.candidates`);
2. solve the MILP for the least predicted damage within the budget
   (:mod:`edgeslim.search.milp`); latency aims ``latency_margin`` below its
   budget, because the final report times the model again on a noisy machine;
3. apply the policy (physical pruning) and measure the result as deployed
   (latency timed interleaved with the dense model, see :func:`_measure`);
4. over the aim? The additive latency model was optimistic by ``measured /
   predicted``: tighten the effective budget by that factor and re-solve; when
   that leaves no policy, bisect back towards the last miss's prediction (at
   most ``max_rounds`` policies measured); the least-damage policy measured
   within the aim wins (else one within the budget itself);
5. nothing met? Measure the two most compressed policies too: the one with the
   lowest predicted cost, and every group at its largest ratio (INT8 kernels are
   not monotone in the channel count, so they can differ). If both miss, the
   budget is impossible with these candidates: say so, and return the closest
   point found (smallest worst ratio of measured to budget).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeslim.bench.macs import count_macs
from edgeslim.search.candidates import Batch, CandidateConfig, damage, measure_candidates
from edgeslim.search.deploy import Deployment
from edgeslim.search.milp import Problem, Solution, most_compressed, solution_of, solve
from edgeslim.search.policy import Policy, apply_
from edgeslim.tasks import get_task


@dataclass(frozen=True)
class SearchConfig:
    candidates: CandidateConfig
    budgets: dict[str, float]  # "latency_ms" (at the deployment's batch), "macs", "size_bytes"
    latency_margin: float = 0.1  # aim this fraction under the latency budget
    max_rounds: int = 6


@dataclass
class Point:
    """One applied policy and what it measured."""

    policy: Policy
    solution: Solution
    measured: dict[str, float]
    met: bool
    how: str  # "milp", "milp, no margin", "lowest predicted cost" or "largest ratios"
    model: nn.Module = field(repr=False)
    effective: dict[str, float] = field(default_factory=dict)

    def within(self, limits: dict[str, float]) -> bool:
        return all(self.measured[k] <= v for k, v in limits.items())

    def worst(self, budgets: dict[str, float]) -> float:
        return max(self.measured[k] / b for k, b in budgets.items())


@dataclass
class SearchResult:
    model: nn.Module  # the chosen (or closest) pruned float model
    notes: dict  # JSON-able record for the report
    sensitivity: dict[str, float]  # layer -> INT8 top-1 drop (points)
    message: str


def search(
    model: nn.Module,
    example: torch.Tensor,
    cfg: SearchConfig,
    batches: list[Batch],
    deploy: Deployment,
    *,
    data: Iterable | None = None,
    calib: Iterable | None = None,
    progress: bool = True,
) -> SearchResult:
    """Choose, apply and verify a per-layer policy under ``cfg.budgets``; ``model`` is untouched.

    Example:
        >>> # res = search(m, x, SearchConfig(cand_cfg, {"latency_ms": 2.0}), val, deploy)
        >>> # res.notes["met"], res.notes["policy"]
    """
    if cfg.candidates.prune.round_to == "auto":  # candidate widths on the staircase's steps
        from edgeslim.prune.align import resolve_alignment

        align = resolve_alignment(model, example[:1], "auto", threads=deploy.threads)
        prune_cfg = replace(cfg.candidates.prune, round_to=align.round_to)
        cfg = replace(cfg, candidates=replace(cfg.candidates, prune=prune_cfg))
    with tempfile.TemporaryDirectory() as d:
        work_dir = Path(d)
        cands = measure_candidates(
            model,
            example,
            cfg.candidates,
            batches,
            deploy,
            work_dir,
            data=data,
            calib=calib,
            progress=progress,
        )
        budgets, dense_file = cfg.budgets, work_dir / "dense.onnx"
        dense_seen: list[float] = []  # the dense model's latency in every policy's timing loop

        def apply_and_measure(sol: Solution) -> tuple[Policy, nn.Module, dict[str, float]]:
            policy = Policy(
                tuple(cands.ratios[i] for i in sol.choice), *cands.switches(sol.fallback)
            )
            pruned = copy.deepcopy(model)
            apply_(pruned, example, cfg.candidates.prune, cands.decisions, policy, data)
            measured = _measure(
                pruned, example[:1], policy, deploy, budgets, work_dir, dense_file, dense_seen
            )
            return policy, pruned, measured

        r = refine(cands.problem, budgets, apply_and_measure, cfg.latency_margin, cfg.max_rounds)
        chosen = r.chosen
        top1 = damage(chosen.model, batches, cfg.candidates.task)[1]
        notes = _notes(cands, cfg, deploy, chosen, r.points, r.floors, top1)
        notes.update(aim=r.aim, within_aim=chosen.within(r.aim), milp_infeasible=r.infeasible)
        return SearchResult(chosen.model, notes, cands.quant_drop, notes["message"])


@dataclass
class Refined:
    chosen: Point  # the least-damage policy within the aim (else the budget), else the closest
    points: list[Point]  # every policy measured, in order
    floors: list[Point]  # the most compressed policies, when they had to be measured
    aim: dict[str, float]
    infeasible: bool  # some (tightened) budget left the MILP without a policy


def refine(
    prob: Problem,
    budgets: dict[str, float],
    apply_and_measure: Callable[[Solution], tuple[Policy, nn.Module, dict[str, float]]],
    latency_margin: float = 0.1,
    max_rounds: int = 6,
) -> Refined:
    """Steps 2-5 of the module docstring; ``apply_and_measure`` makes and measures one policy."""
    points: dict[tuple, Point] = {}

    def try_(sol: Solution, how: str, eff: dict[str, float]) -> Point:
        key = (sol.choice, sol.fallback)
        if key not in points:
            policy, model, measured = apply_and_measure(sol)
            met = all(measured[k] <= b for k, b in budgets.items())
            points[key] = Point(policy, sol, measured, met, how, model, dict(eff))
        return points[key]

    # aim under the latency budget: the report times the model again, on a noisy machine
    aim = {k: b * (1 - latency_margin) if k == "latency_ms" else b for k, b in budgets.items()}
    eff = dict(aim)
    last: Point | None = None  # the last measured policy that missed the aim
    infeasible = False
    for _ in range(4 * max_rounds):  # solves; infeasible ones measure nothing
        if sum(p.how == "milp" for p in points.values()) >= max_rounds:
            break
        sol = solve(prob, eff)
        if sol is None:
            infeasible = True
            if last is None:  # even the aim is below every predicted policy
                break
            # tightened too far: bisect between it and the last miss's prediction
            over = [k for k in eff if eff[k] < last.solution.predicted[k] - 1e-9 * abs(aim[k])]
            if not over:
                break
            for k in over:
                eff[k] = (eff[k] + last.solution.predicted[k]) / 2
            continue
        pt = try_(sol, "milp", eff)
        if pt.within(aim):
            break
        last = pt
        for k, a in aim.items():  # the model was optimistic by measured / predicted
            if pt.measured[k] > a and pt.measured[k] > 0:
                eff[k] = min(eff[k], a * sol.predicted[k] / pt.measured[k])
    if last is None and infeasible and aim != budgets:  # the margin alone left no policy
        sol = solve(prob, budgets)
        if sol is not None:
            try_(sol, "milp, no margin", dict(budgets))
    floors = []
    if not any(p.met for p in points.values()):
        n_d, n_r, _ = prob.shape
        floors = [
            try_(most_compressed(prob, budgets), "lowest predicted cost", {}),
            try_(solution_of(prob, (n_r - 1,) * n_d), "largest ratios", {}),
        ]
        floors = [p for i, p in enumerate(floors) if all(p is not q for q in floors[:i])]
    aimed = [p for p in points.values() if p.within(aim)]
    met = aimed or [p for p in points.values() if p.met]
    if met:
        chosen = min(met, key=lambda p: p.solution.objective)
    else:
        chosen = min(points.values(), key=lambda p: p.worst(budgets))
    return Refined(chosen, list(points.values()), floors, aim, infeasible)


def _measure(
    model: nn.Module,
    ex1: torch.Tensor,
    policy: Policy,
    deploy: Deployment,
    budgets: dict[str, float],
    work_dir: Path,
    dense_file: Path,
    dense_seen: list[float],
) -> dict[str, float]:
    """MACs (exact), and latency and size of the deployed file when they are budgeted.

    Latency is timed interleaved with the dense model and reported as the ratio
    from that loop times the median dense latency over every such loop so far
    (``dense_seen``, appended to): a burst of load during one measurement slows
    both files and does not read as a slow policy.
    """
    out: dict[str, float] = {"macs": float(count_macs(model, ex1)[0])}
    if budgets.keys() & {"latency_ms", "size_bytes"}:
        path = deploy.export(model, work_dir / "policy.onnx", policy.float_layers, policy.low_bits)
        t = deploy.time({"policy": path, "dense": dense_file})
        dense_seen.append(t["dense"])
        out["latency_ms"] = float(np.median(dense_seen)) * t["policy"] / t["dense"]
        out["latency_ms_this_loop"] = t["policy"]
        out["dense_ms_this_loop"] = t["dense"]
        out["size_bytes"] = float(Deployment.size(path))
    return out


def _describe(values: dict[str, float], budgets: dict[str, float]) -> str:
    return ", ".join(f"{k} {values[k]:.4g} (budget {b:.4g})" for k, b in budgets.items())


def _notes(
    cands,
    cfg: SearchConfig,
    deploy: Deployment,
    chosen: Point,
    points: list[Point],
    floors: list[Point],
    top1: float,
) -> dict:
    budgets = cfg.budgets
    pol = chosen.policy
    width = {(row["decision"], row["ratio"]): row["channels"] for row in cands.table}
    reason = None
    if chosen.met:
        message = (
            f"search: budget met: {_describe(chosen.measured, budgets)}; "
            f"predicted {_describe(chosen.solution.predicted, budgets)}; "
            f"{sum(r > 0 for r in pol.ratios)} of {len(pol.ratios)} groups pruned, "
            f"{len(pol.float_layers)} layers kept in float"
            + (f", {len(pol.low_bits)} at fewer weight bits" if pol.low_bits else "")
        )
    else:
        assert floors  # noqa: S101 - nothing met: the most compressed policies were measured
        reason = (
            "neither the policy with the lowest predicted cost nor every group at "
            f"{max(cands.ratios):g} of its channels removed"
            + (" (INT8)" if deploy.int8 else " (FP32)")
            + " measures within the budget: "
            + "; ".join(
                f"{p.how}: "
                + ", ".join(
                    f"{k} {p.measured[k]:.4g} > {b:.4g}"
                    for k, b in budgets.items()
                    if p.measured[k] > b
                )
                for p in floors
            )
        )
        dense = [
            p.measured["dense_ms_this_loop"] for p in points if "dense_ms_this_loop" in p.measured
        ]
        if dense:  # tells a loaded machine from a tight budget
            reason += f" (the dense model measured {np.median(dense):.4g} ms in the same loops)"
        message = (
            f"search: WARNING: budget cannot be met: {reason}; continuing with the closest "
            f"point found: {_describe(chosen.measured, budgets)}"
        )
    return {
        "budget": budgets,
        "int8": deploy.int8,
        "batch": deploy.batch,
        "met": chosen.met,
        "impossible": not chosen.met,
        "reason": reason,
        "message": message,
        "predicted": chosen.solution.predicted,
        "measured": chosen.measured,
        "predicted_loss_increase": chosen.solution.objective,
        "dense": cands.dense,
        "policy": _policy(cands, pol),
        "channels": {
            d.key: [d.channels, width[(d.key, r)]]
            for d, r in zip(cands.decisions, pol.ratios, strict=True)
        },
        "float_layers": list(pol.float_layers),
        "low_bits": dict(pol.low_bits),
        "accuracy": {
            "dense_top1": cands.dense["top1"],
            "top1_before_finetune": top1,
            "metric": get_task(cfg.candidates.task).primary_metric.label,
            "note": "on the sensitivity batches, before fine-tuning",
        },
        "rounds": [
            {
                "how": p.how,
                "effective_budget": p.effective,
                "predicted": p.solution.predicted,
                "measured": p.measured,
                "met": p.met,
                "policy": _policy(cands, p.policy),
                "float_layers": list(p.policy.float_layers),
                "low_bits": dict(p.policy.low_bits),
            }
            for p in points
        ],
        "candidates": cands.table,
        "fallback_candidates": cands.fallback_table,
        "low_bit_candidates": cands.low_bit_table,
    }


def _policy(cands, policy: Policy) -> dict[str, float]:
    return {d.key: r for d, r in zip(cands.decisions, policy.ratios, strict=True)}
