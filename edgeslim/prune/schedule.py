"""Iterative prune -> fine-tune: reach the target in ``steps`` rounds, training after each.

Pruning a little at a time and recovering in between keeps more accuracy than one
shot (Han et al., "Learning both Weights and Connections for Efficient Neural
Networks", NeurIPS 2015; Molchanov et al. 2017). Each round prunes towards a
geometric interpolation of the target (kept MACs or kept channels), then trains
with the shared :class:`~edgeslim.train.trainer.Trainer`. A distillation objective
plugs in as ``objective``: called with the model after each round (its widths
change, so adapters are sized anew), it returns a module that is both the trainer's
``loss_fn`` (``(student, x, y) -> (loss, logits)``, e.g. running a frozen teacher)
and its ``extra`` (trainable adapters).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn
from torch.utils.data import Dataset

from edgeslim.bench.macs import count_macs
from edgeslim.data.loader import make_loader
from edgeslim.prune.config import PruneConfig
from edgeslim.prune.structured import PruneResult, prune_
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer


def prune_finetune(
    model: nn.Module,
    example: torch.Tensor,
    config: PruneConfig,
    train: TrainConfig,
    train_ds: Dataset,
    val_ds: Dataset | None = None,
    *,
    steps: int = 1,
    objective: Callable[[nn.Module], nn.Module] | None = None,
    progress: bool = True,
    task: str = "classification",
) -> tuple[nn.Module, list[dict]]:
    """Return a pruned, fine-tuned copy of ``model`` and a log per round.

    ``train.epochs`` epochs are spent after *each* round. A latency target is met in
    one round (its steps are measured, not interpolated), so ``steps`` is 1 for it.
    ``task`` names the data's task: its loss trains and its metric validates.

    Example:
        >>> # cfg = PruneConfig(target_macs=60_000_000)
        >>> # m, log = prune_finetune(model, x, cfg, TrainConfig(epochs=3), train_ds)
    """
    model = copy.deepcopy(model)
    macs0 = count_macs(model, example)[0]
    calib = make_loader(train_ds, train.batch_size, shuffle=True, seed=train.seed)
    log: list[dict] = []
    if config.target_latency_ms is not None:
        steps = 1
    for k in range(1, steps + 1):
        cfg = _round_config(config, k, steps, macs0, count_macs(model, example)[0])
        res: PruneResult = prune_(model, example, cfg, data=calib)
        loss_fn = objective(model) if objective else None
        extra = loss_fn if isinstance(loss_fn, nn.Module) else None
        trainer = Trainer(model, train, loss_fn=loss_fn, extra=extra, progress=progress, task=task)
        history = trainer.fit(train_ds, val_ds)
        log.append(
            {
                "round": k,
                "ratio": res.ratio,
                "macs": res.macs[1],
                "params": res.params[1],
                "history": history,
            }
        )
    return model, log


def _round_config(cfg: PruneConfig, k: int, steps: int, macs0: int, macs_now: int) -> PruneConfig:
    if cfg.ratio is not None:  # keep (1 - r)^(1/steps) of the current channels each round
        return replace(cfg, ratio=1 - (1 - cfg.ratio) ** (1 / steps))
    if cfg.target_macs is not None:
        goal = int(macs0 * (cfg.target_macs / macs0) ** (k / steps))
        return replace(cfg, target_macs=min(goal, macs_now))
    return cfg
