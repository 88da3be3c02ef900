"""Group importance: run a criterion on every coupled layer space, aggregate per unit.

For each group the criterion scores the rows of every space it reads (a filter,
a BN scale, a consumer's input columns, an activation statistic), then combines
them per unit as the criterion says (``Criterion.reduce``):

- "sum": the unit's raw scores over every position in every space are added, so
  a norm criterion becomes the norm of *all* parameters removed with the unit
  (the group norm of DepGraph, Fang et al. CVPR 2023); a 3x3 conv's 144-weight
  filter outweighs a BN scale, as its magnitude says;
- "mean": each space's scores are divided by their mean first, so a BN and a conv
  weigh the same, and a unit's score is the mean, over spaces, of the mean score
  of its positions there (a flattened channel covers ``H*W`` Linear columns; its
  mean counts once).

Either way the group's scores are divided by their mean at the end, so global
ranking compares groups on one scale. Which rule a criterion uses was chosen by
measurement (ResNet-56 on signs, half the MACs, accuracy after BN recalibration;
``benchmarks/results/pruning.md``): L1 gains 0.45 -> 0.61 from "sum" over all
spaces, Taylor and OBD do better with "mean".
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from edgeslim.core.modes import eval_mode
from edgeslim.graph.groups import DependencyGraph, Group
from edgeslim.graph.layers import axes_of, rows
from edgeslim.graph.trace import capture
from edgeslim.prune.criteria import Criterion

Stats = dict[str, dict]  # "grad": {param fqn: {"taylor": t, "fisher": t}}, "act": {node: {...}}


def group_scores(
    model: nn.Module,
    graph: DependencyGraph,
    criterion: Criterion,
    stats: Stats | None = None,
    seed: int = 0,
) -> list[np.ndarray]:
    """One score per prunable unit of every group (higher = more important)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for gi, group in enumerate(graph.groups):
        per_space = _space_scores(model, graph, group, criterion, stats or {}, gen, gi)
        if not per_space:  # nothing this criterion reads here: fall back to L1 of the filters
            from edgeslim.prune.criteria.l1 import l1_norm

            fallback = [
                (
                    key,
                    l1_norm(
                        {
                            "weight": rows(
                                model.get_submodule(key[0]), graph.specs[key[0]], key[1]
                            ).float()
                        }
                    ),
                )
                for key in group.spaces
                if key[1] == "out" and _has_param(model, graph, key)
            ]
            per_space = fallback
        out.append(_aggregate(group, per_space, criterion.reduce))
    return out


def _has_param(model: nn.Module, graph: DependencyGraph, key: tuple[str, str]) -> bool:
    attr = axes_of(graph.specs[key[0]], key[1])[0][0]
    return getattr(model.get_submodule(key[0]), attr, None) is not None


def _space_scores(model, graph, group: Group, crit: Criterion, stats: Stats, gen, gi: int):
    if crit.view == "activation":
        return _activation_scores(graph, group, crit, stats.get("act", {}), gi)
    res = []
    for key in group.spaces:
        layer, kind = key
        if crit.spaces == "out" and kind != "out":
            continue
        mod, spec = model.get_submodule(layer), graph.specs[layer]
        if crit.view == "scale":
            if kind != "out" or spec.scale is None or getattr(mod, spec.scale, None) is None:
                continue
            w = getattr(mod, spec.scale).detach().reshape(-1, 1).float()
            res.append((key, crit.fn({"scale": w})))
            continue
        if not _has_param(model, graph, key):
            continue
        r: dict = {"weight": rows(mod, spec, kind).float(), "generator": gen}
        if crit.needs == "gradients":
            g = stats.get("grad", {})
            attr = axes_of(spec, kind)[0][0]
            fqn = f"{layer}.{attr}"
            if fqn not in g:
                continue
            for stat in ("taylor", "fisher"):
                r[stat] = rows(mod, spec, kind, {attr: g[fqn][stat]}).float()
        res.append((key, crit.fn(r)))
    return res


def _activation_scores(graph, group: Group, crit: Criterion, act: dict, gi: int):
    res = []
    n = len(group.units)
    for node, (_, gidx, uidx) in graph.activations.items():
        if node not in act or not (gidx == gi).any():
            continue
        sel = gidx == gi
        unit_rows = {}
        for stat, vec in act[node].items():
            v = torch.as_tensor(vec, dtype=torch.float32)[torch.as_tensor(sel)]
            sums = torch.zeros(n).index_add_(0, torch.as_tensor(uidx[sel]), v)
            cnt = torch.zeros(n).index_add_(0, torch.as_tensor(uidx[sel]), torch.ones_like(v))
            unit_rows[stat] = (sums / cnt.clamp(min=1)).reshape(-1, 1)
        res.append((("act", node), crit.fn(unit_rows)))
    return res


def _aggregate(group: Group, per_space: list, reduce: str = "mean") -> np.ndarray:
    n = len(group.units)
    total, count = np.zeros(n), np.zeros(n)
    for key, scores in per_space:
        s = scores.detach().double().numpy()
        if reduce == "mean" or key[0] == "act":
            s = s / (np.abs(s).mean() + 1e-12)
        if key[0] == "act":  # activation scores are already one per unit
            total += s
            count += 1
            continue
        for u, unit in enumerate(group.units):
            pos = unit.get(key)
            if pos is not None and len(pos):
                total[u] += s[pos].sum() if reduce == "sum" else s[pos].mean()
                count[u] += 1
    score = total if reduce == "sum" else total / np.maximum(count, 1)
    return score / (np.abs(score).mean() + 1e-12)


def gradient_stats(model: nn.Module, batches: Iterable) -> dict:
    """``{param: {"taylor": E[(g w)^2], "fisher": E[g^2]}}`` over labelled batches.

    Batches are ``(x, y)``; a bare ``x`` is labelled with the model's own predictions
    (the empirical Fisher of the model's predictive distribution). Runs in eval mode so
    BatchNorm statistics stay untouched; gradients are cleared after.
    """
    params = dict(model.named_parameters())
    acc = {
        k: {"taylor": torch.zeros_like(p), "fisher": torch.zeros_like(p)} for k, p in params.items()
    }
    n = 0
    with eval_mode(model):
        for batch in batches:
            x, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
            model.zero_grad(set_to_none=True)
            logits = model(x)
            target = y if y is not None else logits.detach().argmax(-1)
            torch.nn.functional.cross_entropy(logits, target).backward()
            for k, p in params.items():
                if p.grad is not None:
                    acc[k]["taylor"] += (p.grad * p.detach()).pow(2)
                    acc[k]["fisher"] += p.grad.pow(2)
            n += 1
        model.zero_grad(set_to_none=True)
    return {k: {s: v / max(n, 1) for s, v in d.items()} for k, d in acc.items()}


ENTROPY_BINS = 32  # histogram bins of a channel's pooled activations (Luo & Wu use m bins)


def channel_entropy(pooled: torch.Tensor, bins: int = ENTROPY_BINS) -> torch.Tensor:
    """Entropy (nats) of each column's histogram over its own range (``bins`` bins).

    Luo and Wu, "An Entropy-based Pruning Method for CNN Compression", 2017
    (arXiv:1706.05791), eq. 1: a channel's global-average-pooled activation over the
    samples, histogrammed; a channel whose output hardly varies carries little
    information. A constant column has entropy 0.

    Example:
        >>> x = torch.stack([torch.zeros(4), torch.tensor([0.0, 1.0, 2.0, 3.0])], 1)
        >>> channel_entropy(x, bins=4)
        tensor([0.0000, 1.3863])
    """
    out = torch.zeros(pooled.shape[1])
    for c in range(pooled.shape[1]):
        v = pooled[:, c].double()
        lo, hi = float(v.min()), float(v.max())
        if not hi > lo:
            continue
        p = torch.histc(v, bins=bins, min=lo, max=hi) / len(v)
        p = p[p > 0]
        out[c] = float(-(p * p.log()).sum())
    return out


def activation_stats(model: nn.Module, graph: DependencyGraph, batches: Iterable) -> dict:
    """``{node: {"apoz": fraction <= 0, "mean_act": mean |a|, "entropy": nats}}`` per channel.

    ``apoz`` and ``mean_act`` are averaged over the batches; ``entropy`` is that of each
    channel's per-sample pooled activation over all of them (:func:`channel_entropy`).
    The model is re-captured at the batch size of the data, so node names match the
    dependency graph's; partial batches of another size are skipped.
    """
    wanted = graph.activations
    sums: dict[str, dict[str, torch.Tensor]] = {}
    pooled: dict[str, list[torch.Tensor]] = {}
    n = 0
    gm = shape = None
    with torch.no_grad():
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            if gm is None:
                gm, shape = capture(model, x).module(), tuple(x.shape)
            if tuple(x.shape) != shape:
                continue
            seen = _Recorder(gm, wanted).run(x)
            for node, t in seen.items():
                axis = wanted[node][0]
                dims = [d for d in range(t.dim()) if d != axis]
                cur = {"apoz": (t <= 0).float().mean(dims), "mean_act": t.abs().mean(dims)}
                prev = sums.setdefault(node, {k: torch.zeros_like(v) for k, v in cur.items()})
                for k, v in cur.items():
                    prev[k] += v
                per_sample = [d for d in dims if d != 0]
                p = t.float().mean(per_sample) if per_sample else t.float()
                pooled.setdefault(node, []).append(p.reshape(t.shape[0], -1) if axis else p)
            n += 1
    out = {node: {k: (v / max(n, 1)).numpy() for k, v in d.items()} for node, d in sums.items()}
    for node, ps in pooled.items():
        out[node]["entropy"] = channel_entropy(torch.cat(ps)).numpy()
    return out


class _Recorder(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule, wanted: dict) -> None:
        super().__init__(gm)
        self.wanted = wanted
        self.seen: dict[str, torch.Tensor] = {}

    def run_node(self, n: torch.fx.Node):
        out = super().run_node(n)
        if n.name in self.wanted and isinstance(out, torch.Tensor):
            self.seen[n.name] = out.detach()
        return out

    def run(self, *args):  # type: ignore[override]
        super().run(*args)
        return self.seen
