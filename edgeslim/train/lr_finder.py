"""The learning-rate range test (Smith, 2017, "Cyclical Learning Rates for Training
Neural Networks", sec. 3.3): train a throw-away copy of the model for a few hundred
steps while the learning rate grows exponentially, and read a good rate off the loss.

The loss is smoothed with a bias-corrected exponential moving average (as in fastai's
``lr_find``). The suggestion is a tenth of the rate at the smoothed minimum (the
"minimum / 10" rule): the minimum sits just before divergence, and a tenth of it is
still on the steep, stable part of the curve. The steepest-descent rate is reported too.
The probe trains a deep copy: the caller's model, optimiser state and random number
streams are left exactly as they were.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from edgeslim.core.errors import EdgeslimError
from edgeslim.tasks import Task, get_task
from edgeslim.train.config import TrainConfig
from edgeslim.train.optim import build_optimizer

LossFn = Callable[[nn.Module, Any, Any], tuple[torch.Tensor, torch.Tensor]]
DIVERGED = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum
SMOOTH = 0.9  # EMA factor of the loss


@dataclass(frozen=True)
class LRRange:
    """The sweep: learning rates, smoothed losses and the rates read from them."""

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    min_loss_lr: float
    steepest_lr: float
    suggestion: float  # min_loss_lr / 10


def find_lr(
    model: nn.Module,
    train_ds: Dataset,
    config: TrainConfig,
    *,
    loss_fn: LossFn | None = None,
    extra: nn.Module | None = None,
    task: str | Task = "classification",
    num_steps: int = 100,
    lr_range: tuple[float, float] = (1e-5, 10.0),
    device: str | torch.device = "cpu",
) -> LRRange:
    """Run the range test on a copy of ``model`` (and ``extra``) with ``config``'s optimiser.

    ``task`` splits and collates the batches and gives the default loss (its own).

    Example:
        >>> # r = find_lr(model, load_dataset("signs", "train"), TrainConfig(lr="auto"))
        >>> # TrainConfig(lr=r.suggestion)
    """
    lo, hi = lr_range
    if not 0 < lo < hi or num_steps < 5:
        raise EdgeslimError(f"bad LR range test: range {lr_range}, {num_steps} steps")
    probe = copy.deepcopy(model).to(device).train()
    probe_extra = copy.deepcopy(extra).to(device).train() if extra is not None else None
    params = list(probe.parameters()) + (list(probe_extra.parameters()) if probe_extra else [])
    opt = build_optimizer(params, config, lr=lo)
    t = get_task(task)
    loss_fn = loss_fn or _task_loss(t)
    batch = min(config.batch_size, len(train_ds))  # type: ignore[arg-type]
    lrs: list[float] = []
    losses: list[float] = []
    avg = 0.0
    with torch.random.fork_rng(devices=[]):  # augmentation draws must not shift the real run
        torch.manual_seed(config.seed)
        batches = _forever(lambda e: _loader(train_ds, batch, config.seed + e, t))
        for step in range(num_steps):
            lr = lo * (hi / lo) ** (step / (num_steps - 1))
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = t.to_device(next(batches), device)
            loss, _ = loss_fn(probe, x, y)
            if not torch.isfinite(loss):
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            avg = SMOOTH * avg + (1 - SMOOTH) * loss.item()
            smoothed = avg / (1 - SMOOTH ** (step + 1))
            lrs.append(lr)
            losses.append(smoothed)
            if step > 5 and smoothed > DIVERGED * min(losses):
                break
    return _read(lrs, losses)


def _task_loss(task: Task) -> LossFn:
    def loss_fn(model: nn.Module, x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
        out = task.forward(model, x)
        return task.loss(out, y, 0.0), out

    return loss_fn


def _loader(ds: Dataset, batch: int, seed: int, task: Task) -> DataLoader:
    """A seeded, shuffled pass over ``ds`` in full batches, collated the task's way."""
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(
        ds, batch_size=batch, shuffle=True, drop_last=True, generator=g, collate_fn=task.collate
    )


def _forever(make):
    epoch = 0
    while True:
        yield from make(epoch)
        epoch += 1


def _read(lrs: list[float], losses: list[float]) -> LRRange:
    """The minimum-loss and steepest-descent rates of a sweep."""
    if len(losses) < 3:
        raise EdgeslimError("LR range test diverged within its first steps; give a --lr explicitly")
    best = min(range(len(losses)), key=losses.__getitem__)
    # steepest descent in log-LR before the minimum (skip the first noisy tenth)
    start = max(1, len(losses) // 10)
    slopes = [
        (losses[i] - losses[i - 1]) / (math.log(lrs[i]) - math.log(lrs[i - 1]))
        for i in range(start, max(start + 1, best + 1))
        if i < len(losses)
    ]
    steep = lrs[start + min(range(len(slopes)), key=slopes.__getitem__)] if slopes else lrs[best]
    return LRRange(tuple(lrs), tuple(losses), lrs[best], steep, lrs[best] / 10)
