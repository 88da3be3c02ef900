"""``edgeslim prune --search``: a MAC or latency target met by the sensitivity search.

Uniform and global ranking decide *how many* channels each group loses by one
rule. The search measures instead: each group's pruning damage at a few ratios
(cross-entropy increase on validation batches, that group alone pruned with the
chosen criterion), then the MILP picks the per-group ratios with the least total
damage whose exact MACs (or FP32 ONNX Runtime latency at batch 1) fit the target
(:func:`edgeslim.search.budget.search`). On half-MACs ResNet-56 it keeps the
residual widths and thins the inner convolutions: 71.5% top-1 after BN
recalibration against 61.0% for uniform L1, but after 10 epochs of KD fine-tuning
94.45% against 94.72% (3 seeds, ``benchmarks/results/pruning.md``): a better
starting point that fine-tuning does not keep.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.models.inputs import InputSpec
from edgeslim.prune.config import PruneConfig
from edgeslim.quant.config import PTQConfig
from edgeslim.search.budget import SearchConfig, SearchResult, search
from edgeslim.search.candidates import Batch, CandidateConfig
from edgeslim.search.deploy import Deployment

DEFAULT_RATIOS = (0.0, 0.25, 0.5, 0.625, 0.75)


def search_to_target(
    model: nn.Module,
    spec: InputSpec,
    cfg: PruneConfig,
    batches: list[Batch],
    *,
    data: Iterable | None = None,
    ratios: tuple[float, ...] = DEFAULT_RATIOS,
    threads: int | None = None,
    progress: bool = True,
    task: str = "classification",
) -> SearchResult:
    """Per-group ratios for ``cfg``'s MAC or latency target; ``model`` is untouched.

    ``cfg`` supplies the criterion, ``round_to``, ``min_channels`` and ``ignore``;
    ``batches`` are labelled validation batches the damage is measured on; ``data``
    feeds data-driven criteria; ``task`` names what the batches are (loss and metric).
    """
    if cfg.target_macs is not None:
        budgets = {"macs": float(cfg.target_macs)}
    elif cfg.target_latency_ms is not None:
        budgets = {"latency_ms": float(cfg.target_latency_ms)}
    else:
        raise EdgeslimError(
            "--search needs --target-macs or --target-latency-ms: it spends a budget, "
            "a per-layer --ratio leaves nothing to choose"
        )
    if cfg.overrides or cfg.global_ranking:
        raise EdgeslimError("--search chooses every group's ratio: drop --override / --global")
    if not batches:
        raise EdgeslimError("--search needs labelled validation data (--data)")
    base = replace(cfg, ratio=0.0, target_macs=None, target_latency_ms=None)
    cand = CandidateConfig(tuple(sorted({0.0, *ratios})), base, frozenset(budgets), 0, task=task)
    deploy = Deployment(spec.with_batch(1), False, PTQConfig(), (), batch=1, threads=threads)
    return search(
        model,
        spec.example(batch=2),
        SearchConfig(cand, budgets),
        batches,
        deploy,
        data=data,
        progress=progress,
    )
