"""Search under a budget: solve, apply, measure, tighten, and say plainly when it cannot be met.

1. measure every candidate (:mod:`edgeslim.search.candidates`);
2. solve the MILP for the least predicted damage within the budget
   (:mod:`edgeslim.search.milp`); latency aims ``latency_margin`` below its
   budget, because the final report times the model again on a noisy machine;
3. apply the policy (physical pruning) and measure the result as deployed;
4. over the aim? The additive latency model was optimistic by ``measured /
   predicted``: tighten the effective budget by that factor and re-solve
   (at most ``max_rounds`` policies); the least-damage policy measured within
   the aim wins (else one within the budget itself);
5. nothing met? Measure the most compressed policy too. If even that misses,
   the budget is impossible with these candidates: say so, and return the
   closest point found (smallest worst ratio of measured to budget).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from edgeslim.bench.macs import count_macs
from edgeslim.search.candidates import Batch, CandidateConfig, damage, measure_candidates
from edgeslim.search.deploy import Deployment
from edgeslim.search.milp import Solution, most_compressed, solve
from edgeslim.search.policy import Policy, apply_

UNITS = {"latency_ms": "ms", "macs": "MACs", "size_bytes": "bytes"}


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
    how: str  # "milp" or "most compressed"
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
        prob, budgets = cands.problem, cfg.budgets
        dense_file = work_dir / "dense.onnx"
        points: dict[tuple, Point] = {}

        def try_(sol: Solution, how: str, eff: dict[str, float]) -> Point:
            key = (sol.choice, sol.fallback)
            if key not in points:
                policy = Policy(
                    tuple(cands.ratios[i] for i in sol.choice),
                    tuple(
                        la for la, on in zip(cands.fallback_layers, sol.fallback, strict=True) if on
                    ),
                )
                pruned = copy.deepcopy(model)
                apply_(pruned, example, cfg.candidates.prune, cands.decisions, policy, data)
                measured = _measure(
                    pruned, example[:1], policy, deploy, budgets, work_dir, dense_file
                )
                met = all(measured[k] <= b for k, b in budgets.items())
                points[key] = Point(policy, sol, measured, met, how, pruned, dict(eff))
            return points[key]

        # aim under the latency budget: the report times the model again, on a noisy machine
        aim = {
            k: b * (1 - cfg.latency_margin) if k == "latency_ms" else b for k, b in budgets.items()
        }
        eff = dict(aim)
        rounds_infeasible = False
        for _ in range(cfg.max_rounds):
            sol = solve(prob, eff)
            if sol is None:
                rounds_infeasible = True
                break
            pt = try_(sol, "milp", eff)
            if pt.within(aim):
                break
            for k, a in aim.items():  # the model was optimistic by measured / predicted
                if pt.measured[k] > a and pt.measured[k] > 0:
                    eff[k] = min(eff[k], a * sol.predicted[k] / pt.measured[k])
        fastest = None
        if not any(p.met for p in points.values()):
            fastest = try_(most_compressed(prob, budgets), "most compressed", {})
        aimed = [p for p in points.values() if p.within(aim)]
        met = aimed or [p for p in points.values() if p.met]
        if met:
            chosen = min(met, key=lambda p: p.solution.objective)
        else:
            chosen = min(points.values(), key=lambda p: p.worst(budgets))
        top1 = damage(chosen.model, batches)[1]
        notes = _notes(cands, cfg, deploy, chosen, list(points.values()), fastest, top1)
        notes.update(aim=aim, within_aim=chosen.within(aim), milp_infeasible=rounds_infeasible)
        return SearchResult(chosen.model, notes, cands.quant_drop, notes["message"])


def _measure(
    model: nn.Module,
    ex1: torch.Tensor,
    policy: Policy,
    deploy: Deployment,
    budgets: dict[str, float],
    work_dir: Path,
    dense_file: Path,
) -> dict[str, float]:
    """MACs (exact), and latency and size of the deployed file when they are budgeted."""
    out: dict[str, float] = {"macs": float(count_macs(model, ex1)[0])}
    if budgets.keys() & {"latency_ms", "size_bytes"}:
        path = deploy.export(model, work_dir / "policy.onnx", policy.float_layers)
        files = {"policy": path, "dense": dense_file} if dense_file.is_file() else {"policy": path}
        out["latency_ms"] = deploy.time(files)["policy"]
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
    fastest: Point | None,
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
        )
    else:
        assert fastest is not None  # nothing met: the most compressed policy was measured
        over = {k: fastest.measured[k] for k, b in budgets.items() if fastest.measured[k] > b}
        reason = (
            f"the budget is below what the most compressed candidate policy measures "
            f"(every group at up to {max(cands.ratios):g} of its channels removed"
            + (", INT8" if deploy.int8 else ", FP32")
            + "): "
            + ", ".join(f"{k} {v:.4g} > {budgets[k]:.4g}" for k, v in over.items())
        )
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
        "accuracy": {
            "dense_top1": cands.dense["top1"],
            "top1_before_finetune": top1,
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
            }
            for p in points
        ],
        "candidates": cands.table,
        "fallback_candidates": cands.fallback_table,
    }


def _policy(cands, policy: Policy) -> dict[str, float]:
    return {d.key: r for d, r in zip(cands.decisions, policy.ratios, strict=True)}
