"""Measure every option of every decision: its damage, its exact counts, its deployed cost.

For each decision (a prunable group, see :mod:`edgeslim.search.policy`) and each
candidate ratio, the model is pruned with *only that decision* applied (no
fine-tuning) and measured:

- damage: increase of the task's mean loss (cross-entropy for classification) and
  drop of its primary metric (top-1, mIoU, ...; in points, positive = worse) on a
  few validation batches: the per-group sensitivity scan of Li et al. 2017
  ("Pruning Filters for Efficient ConvNets", Section 3.2);
- MACs and parameters: counted exactly, for single decisions and for every pair
  of decisions that share a layer (their interaction term makes the MILP's
  counts exact, see :mod:`edgeslim.search.milp`);
- latency and size on disk: the candidate is deployed (INT8 QDQ or FP32 ONNX)
  and timed on ONNX Runtime interleaved with the dense model (one short loop per
  decision); cost = candidate minus dense (an additive model; the search
  re-measures the policy it picks and tightens the budget when the model was
  optimistic).

To bound the work on a small machine at most ``max_probes`` files are timed:
when there are more options than that, only each decision's largest ratio is
deployed (largest MAC savings first) and the other ratios are interpolated in
proportion to their exact MAC (latency) or parameter (size) savings; decisions
left without a probe, and the pairwise interaction terms, use the ms-per-MAC and
bytes-per-parameter slopes fitted on the probes.

With INT8 and ``float_fallback > 0``, each quantized layer's sensitivity is
measured too (only that layer quantized, calibrated with the quantize stage's
settings; :func:`edgeslim.quant.sensitivity.only_layer`), and the
``float_fallback`` most damaging layers (those that alone raise the validation
loss by at least ``fallback_min_loss``) become float-fallback candidates whose
latency and size cost is measured the same way (on the dense model).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from edgeslim.bench.macs import count_macs, count_params
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode
from edgeslim.graph.attention import convert_mha_
from edgeslim.graph.groups import build_dependency_graph
from edgeslim.prune.config import PruneConfig
from edgeslim.prune.criteria import CRITERIA
from edgeslim.prune.importance import group_scores
from edgeslim.prune.remove import remove_
from edgeslim.prune.structured import collect_stats
from edgeslim.search.deploy import Deployment
from edgeslim.search.milp import Cost, Problem
from edgeslim.search.policy import Decision, decisions, kept, plan_for
from edgeslim.tasks import Task, batch_len, get_task

Batch = tuple[Any, torch.Tensor]  # (inputs, targets), as the task splits them


@dataclass(frozen=True)
class CandidateConfig:
    ratios: tuple[float, ...]  # first one is 0.0 (unpruned)
    prune: PruneConfig  # criterion, round_to, min_channels, ignore
    needs: frozenset[str]  # budgeted quantities: "latency_ms", "macs", "size_bytes"
    float_fallback: int = 2  # at most this many float-fallback candidates
    fallback_min_loss: float = 0.01  # ... each raising the val loss by at least this (nats) in INT8
    max_probes: int = 48  # deployed files timed at most
    task: str = "classification"  # what the batches are: loss and metric of the damage
    low_bits: int | None = None  # INT8 only: weight bits a layer may take instead of 8
    low_bit_layers: int = 8  # ... offered to this many layers, the largest first


@dataclass
class Candidates:
    """Everything measured, and the MILP built from it."""

    problem: Problem
    decisions: list[Decision]
    ratios: tuple[float, ...]
    fallback_layers: tuple[str, ...]
    dense: dict  # loss, top1 (the task's primary metric), macs, params (+ latency_ms, size_bytes)
    table: list[dict]  # one row per (decision, ratio)
    fallback_table: list[dict]
    quant_drop: dict[str, float] = field(default_factory=dict)  # layer -> metric drop, points
    low_bit_table: list[dict] = field(default_factory=list)  # switches after the float ones

    def switches(self, on: tuple[bool, ...]) -> tuple[tuple[str, ...], tuple[tuple[str, int], ...]]:
        """The MILP's layer switches as (layers kept in float, (layer, weight bits))."""
        n = len(self.fallback_layers)
        floats = tuple(la for la, o in zip(self.fallback_layers, on[:n], strict=True) if o)
        low = tuple(
            (r["layer"], r["bits"]) for r, o in zip(self.low_bit_table, on[n:], strict=True) if o
        )
        return floats, low


def damage(
    model: nn.Module, batches: list[Batch], task: str | Task = "classification"
) -> tuple[float, float]:
    """Mean task loss and primary metric of ``model`` on ``batches`` (eval mode, restored).

    For classification: mean cross-entropy and top-1.
    """
    t = get_task(task)
    metrics = t.new_metrics()
    loss = n = 0.0
    with eval_mode(model), torch.no_grad():
        for batch in batches:
            x, y = t.split(batch)
            out = t.forward(model, x)
            b = batch_len(y)
            loss += float(t.loss(out, y, 0.0)) * b
            metrics.acc[t.primary].update(out, y)
            n += b
    if not n:
        raise EdgeslimError("search: the sensitivity batches are empty")
    return loss / n, metrics.acc[t.primary].compute()


def _drop(task: Task, before: float, after: float) -> float:
    """Worsening of the primary metric (positive = worse), as a fraction."""
    return task.primary_metric.drop(before, after)


def measure_candidates(
    model: nn.Module,
    example: torch.Tensor,
    cfg: CandidateConfig,
    batches: list[Batch],
    deploy: Deployment,
    work_dir: Path,
    *,
    data: Iterable | None = None,
    calib: Iterable | None = None,
    progress: bool = True,
) -> Candidates:
    """Measure every option (see the module docstring); ``model`` is not modified.

    Args:
        model: the float model.
        example: an input batch of 2 (graph capture).
        cfg: ratios, pruning settings, what is budgeted.
        batches: labelled validation batches for the damage.
        deploy: how candidates are deployed and timed.
        work_dir: where candidate files go.
        data: batches for data-driven pruning criteria.
        calib: calibration batches for the per-layer INT8 sensitivity.
    """
    task = get_task(cfg.task)
    work = copy.deepcopy(model).eval()
    convert_mha_(work)
    graph = build_dependency_graph(work, example, strict=cfg.prune.strict)
    stats = collect_stats(work, graph, cfg.prune, data)
    scores = group_scores(work, graph, CRITERIA.get(cfg.prune.criterion), stats, cfg.prune.seed)
    ds = decisions(graph, cfg.prune)
    if not ds:
        raise EdgeslimError("search: the model has no prunable channel groups (all fixed/ignored)")
    ratios, ex1 = cfg.ratios, example[:1]
    n_d, n_r = len(ds), len(ratios)

    def pruned(rs: list[float]) -> nn.Module:
        return remove_(copy.deepcopy(work), graph, plan_for(graph, scores, cfg.prune, ds, rs))

    loss0, top0 = damage(work, batches, task)
    macs0, params0 = count_macs(work, ex1)[0], count_params(work)
    loss, top = np.zeros((n_d, n_r)), np.zeros((n_d, n_r))
    macs, params = np.zeros((n_d, n_r)), np.zeros((n_d, n_r))
    width = np.zeros((n_d, n_r), dtype=int)
    same = np.zeros((n_d, n_r), dtype=bool)  # option r prunes exactly what option r - 1 does
    bar = tqdm(total=n_d * (n_r - 1), desc="search: sensitivity", disable=not progress)
    for d in range(n_d):
        width[d, 0] = ds[d].channels
        prev: tuple = ()
        for r in range(1, n_r):
            rs = [0.0] * n_d
            rs[d] = ratios[r]
            plan = plan_for(graph, scores, cfg.prune, ds, rs)
            key = tuple(sorted((g, tuple(u.tolist())) for g, u in plan.items()))
            if r > 1 and key == prev:  # aligned widths: two ratios on the same step
                same[d, r] = True
                for a in (loss, top, macs, params, width):
                    a[d, r] = a[d, r - 1]
                bar.update()
                continue
            prev = key
            cand = remove_(copy.deepcopy(work), graph, plan)
            lo, t1 = damage(cand, batches, task)
            loss[d, r], top[d, r] = lo - loss0, _drop(task, top0, t1)
            macs[d, r] = count_macs(cand, ex1)[0] - macs0
            params[d, r] = count_params(cand) - params0
            width[d, r] = kept(graph, plan, ds[d])
            bar.update()
    bar.close()
    pair_macs, pair_params = _pairs(graph, ds, ratios, pruned, ex1, macs, params, macs0, params0)

    quant_drop: dict[str, float] = {}
    fb_rows: list[dict] = []
    if deploy.int8 and calib is not None and cfg.float_fallback > 0:
        quant_drop, fb_rows = _quant_sensitivity(work, batches, calib, deploy, task, progress)
        fb_rows = [r for r in fb_rows if r["loss"] >= cfg.fallback_min_loss and r["loss"] > 0]
        fb_rows = fb_rows[: cfg.float_fallback]
    fb_layers = tuple(r["layer"] for r in fb_rows)
    lb_rows: list[dict] = []
    if deploy.int8 and calib is not None and cfg.low_bits:
        from edgeslim.search.low_bits import low_bit_rows

        lb_rows = low_bit_rows(
            work,
            batches,
            list(calib),
            deploy,
            cfg.low_bits,
            cfg.low_bit_layers,
            lambda m, b: damage(m, b, task),
            lambda before, after: _drop(task, before, after),
            progress,
        )
    n_sw = len(fb_layers) + len(lb_rows)
    gain = np.array([r["loss"] for r in fb_rows] + [-r["loss"] for r in lb_rows], dtype=float)
    exclusive = tuple(
        (i, len(fb_layers) + j)
        for i, la in enumerate(fb_layers)
        for j, r in enumerate(lb_rows)
        if r["layer"] == la
    )

    dense = {"loss": loss0, "top1": top0, "macs": macs0, "params": params0}
    costs: dict[str, Cost] = {}
    if "macs" in cfg.needs:
        costs["macs"] = Cost(float(macs0), macs, pair_macs, np.zeros(n_sw))
    lat = size = None
    if cfg.needs & {"latency_ms", "size_bytes"}:
        probes = _choose_probes(macs, cfg.max_probes - n_sw - 1, same)
        files = {"dense": deploy.export(work, work_dir / "dense.onnx")}
        for d, r in tqdm(probes, desc="search: deploy candidates", disable=not progress):
            rs = [0.0] * n_d
            rs[d] = ratios[r]
            files[f"{d}:{r}"] = deploy.export(pruned(rs), work_dir / f"cand-{d}-{r}.onnx")
        for i, layer in enumerate(fb_layers):
            files[f"fb:{i}"] = deploy.export(work, work_dir / f"float-{i}.onnx", (layer,))
        for i, row in enumerate(lb_rows):
            low = ((row["layer"], row["bits"]),)
            files[f"lb:{i}"] = deploy.export(work, work_dir / f"low-{i}.onnx", low_bits=low)
        # time each decision's files in a short loop of their own with the dense model:
        # a delta never spans a change of machine load, and caches stay as warm as when
        # one model is benchmarked alone
        loops: dict[str, list[str]] = {}
        for k in files:
            if k != "dense":
                loops.setdefault(k.split(":")[0], []).append(k)
        delta: dict[str, float] = {}
        dense_runs = []
        for keys in loops.values():
            t = deploy.time({"dense": files["dense"], **{k: files[k] for k in keys}})
            dense_runs.append(t["dense"])
            delta.update({k: t[k] - t["dense"] for k in keys})
        dense_ms = float(np.median(dense_runs))
        nbytes = {k: Deployment.size(p) for k, p in files.items()}
        dense.update(latency_ms=dense_ms, size_bytes=nbytes["dense"])
        lat = _fill({pr: delta[f"{pr[0]}:{pr[1]}"] for pr in probes}, macs, pair_macs, same)
        size = _fill(
            {pr: nbytes[f"{pr[0]}:{pr[1]}"] - nbytes["dense"] for pr in probes},
            params,
            pair_params,
            same,
        )
        keys = [f"fb:{i}" for i in range(len(fb_layers))] + [f"lb:{i}" for i in range(len(lb_rows))]
        fb_ms = np.array([delta[k] for k in keys])
        fb_b = np.array([nbytes[k] - nbytes["dense"] for k in keys])
        for row, m, b in zip(fb_rows + lb_rows, fb_ms, fb_b, strict=True):
            row.update(latency_ms=float(m), size_bytes=int(b))
        if "latency_ms" in cfg.needs:
            costs["latency_ms"] = Cost(dense_ms, lat[0], lat[1], fb_ms)
        if "size_bytes" in cfg.needs:
            costs["size_bytes"] = Cost(float(nbytes["dense"]), size[0], size[1], fb_b.astype(float))
        measured = set(probes)
    else:
        measured = set()

    table = []
    for d in range(n_d):
        for r in range(n_r):
            table.append(
                {
                    "decision": ds[d].key,
                    "ratio": ratios[r],
                    "channels": int(width[d, r]),
                    "of": ds[d].channels,
                    "loss": float(loss[d, r]),
                    "top1_drop_pts": 100 * float(top[d, r]),
                    "macs": int(macs[d, r]),
                    "params": int(params[d, r]),
                    "latency_ms": float(lat[0][d, r]) if lat is not None else None,
                    "size_bytes": int(size[0][d, r]) if size is not None else None,
                    "timed": (d, r) in measured,
                }
            )
    problem = Problem(loss, costs, gain, exclusive)
    return Candidates(problem, ds, ratios, fb_layers, dense, table, fb_rows, quant_drop, lb_rows)


def _pairs(graph, ds, ratios, pruned, ex1, macs, params, macs0, params0):
    """Exact MAC and parameter interaction terms of decisions that share a layer."""
    layers = [{la for g in d.groups for la in graph.groups[g].layers} for d in ds]
    n_d, n_r = len(ds), len(ratios)
    pair_macs: dict[tuple[int, int], np.ndarray] = {}
    pair_params: dict[tuple[int, int], np.ndarray] = {}
    for a in range(n_d):
        for b in range(a + 1, n_d):
            if not layers[a] & layers[b]:
                continue
            pm, pp = np.zeros((n_r, n_r)), np.zeros((n_r, n_r))
            for r in range(1, n_r):
                for s in range(1, n_r):
                    rs = [0.0] * n_d
                    rs[a], rs[b] = ratios[r], ratios[s]
                    cand = pruned(rs)
                    pm[r, s] = count_macs(cand, ex1)[0] - macs0 - macs[a, r] - macs[b, s]
                    pp[r, s] = count_params(cand) - params0 - params[a, r] - params[b, s]
            pair_macs[(a, b)], pair_params[(a, b)] = pm, pp
    return pair_macs, pair_params


def _choose_probes(
    macs: np.ndarray, limit: int, same: np.ndarray | None = None
) -> list[tuple[int, int]]:
    """Every distinct option when they fit in ``limit``, else the largest ratio of the biggest
    savers (an option that prunes what the previous one does is never timed twice)."""
    n_d, n_r = macs.shape
    every = [(d, r) for d in range(n_d) for r in range(1, n_r) if same is None or not same[d, r]]
    if len(every) <= limit:
        return every
    largest = sorted(((d, n_r - 1) for d in range(n_d)), key=lambda p: macs[p])
    return largest[: max(limit, 1)]


def _fill(
    measured: dict[tuple[int, int], float],
    proxy: np.ndarray,
    proxy_pair: dict,
    same: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Measured deltas where timed; elsewhere scaled from the proxy (exact MACs or params)."""
    # robust cost-per-unit slope: the median ratio over probes, never negative (small
    # channel counts can make a pruned INT8 conv slower; that is not a trend to extrapolate)
    ratios = [v / proxy[k] for k, v in measured.items() if proxy[k]]
    slope = max(0.0, float(np.median(ratios))) if ratios else 0.0
    out = np.zeros_like(proxy, dtype=float)
    n_d, n_r = proxy.shape
    for d in range(n_d):
        own = {r: v for (dd, r), v in measured.items() if dd == d}
        ref = max(own, default=None)
        for r in range(1, n_r):
            if r in own:
                out[d, r] = own[r]
            elif same is not None and same[d, r]:
                out[d, r] = out[d, r - 1]
            elif ref is not None and proxy[d, ref]:
                out[d, r] = own[ref] * proxy[d, r] / proxy[d, ref]
            else:
                out[d, r] = slope * proxy[d, r]
    return out, {k: slope * v for k, v in proxy_pair.items()}


def _quant_sensitivity(work, batches, calib, deploy: Deployment, task: Task, progress: bool):
    """Per-layer INT8 damage (only that layer quantized), most damaging first."""
    from edgeslim.quant.ptq import quantize_ptq
    from edgeslim.quant.sensitivity import only_layer

    calib = list(calib)
    cfg = replace(deploy.ptq, calib_batches=len(calib), bias_correction=False)
    qm = quantize_ptq(work, calib, cfg, progress=False)
    with only_layer(qm, None):
        l0, t0 = damage(qm.model, batches, task)
    rows = []
    for layer in tqdm(qm.layers(), desc="search: int8 sensitivity", disable=not progress):
        with only_layer(qm, layer):
            lo, t1 = damage(qm.model, batches, task)
        rows.append({"layer": layer, "loss": lo - l0, "top1_drop_pts": 100 * _drop(task, t0, t1)})
    rows.sort(key=lambda r: -r["loss"])
    return {r["layer"]: r["top1_drop_pts"] for r in rows}, rows
