"""The oracle: a pruned model must compute exactly what the masked dense model computes."""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgeslim.bench.macs import count_params
from edgeslim.graph import build_dependency_graph
from edgeslim.prune.allocate import allocate
from edgeslim.prune.config import PruneConfig
from edgeslim.prune.criteria import CRITERIA
from edgeslim.prune.importance import group_scores
from edgeslim.prune.remove import mask_, max_abs_diff, remove_

TOL = 1e-5


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every norm layer non-trivial statistics so that masked channels matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            for name in ("weight", "running_var"):
                t = getattr(m, name, None)
                if isinstance(t, torch.Tensor) and t.dim() == 1:
                    t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            for name in ("bias", "running_mean"):
                t = getattr(m, name, None)
                if isinstance(t, torch.Tensor) and t.dim() == 1:
                    t.copy_(0.1 * torch.randn(t.shape, generator=gen))
    return model.eval()


def check_oracle(
    model: nn.Module,
    example: torch.Tensor,
    cfg: PruneConfig | None = None,
    graph=None,
    stats=None,
    x: torch.Tensor | None = None,
) -> nn.Module:
    """Prune with ``cfg``; assert pruned == masked dense (1e-5), smaller, and not a no-op."""
    cfg = cfg or PruneConfig(ratio=0.5)
    graph = graph or build_dependency_graph(model, example)
    scores = group_scores(model, graph, CRITERIA.get(cfg.criterion), stats, cfg.seed)
    plan = allocate(graph, scores, cfg, cfg.ratio)
    assert plan, "nothing was pruned"
    masked = mask_(copy.deepcopy(model), graph, plan)
    pruned = remove_(copy.deepcopy(model), graph, plan)
    x = example if x is None else x
    diff, scale = max_abs_diff(pruned, masked, x)
    assert diff <= TOL * max(1.0, scale), f"pruned != masked dense: {diff}"
    changed, _ = max_abs_diff(model, masked, x)
    assert changed > 1e-4 * max(1.0, scale), "masking changed nothing: the oracle is blind"
    assert count_params(pruned) < count_params(model)
    return pruned
