"""The one training loop used by ``train``, pruning fine-tune and distillation.

- LR is a pure function of the step (:mod:`edgeslim.train.schedule`), and every
  epoch reseeds shuffling, augmentation and dropout from ``(seed, epoch)``, so a
  run killed mid-epoch and resumed from its last checkpoint ends bit-identical
  to an uninterrupted one on CPU.
- Losses plug in as ``loss_fn(model, x, y) -> (loss, logits)``; distillation
  passes a loss that also runs a frozen teacher, plus its adapters as ``extra``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from edgeslim.bench.accuracy import evaluate_model
from edgeslim.core.errors import EdgeslimError
from edgeslim.data.loader import make_loader
from edgeslim.train.checkpoint import load_checkpoint, save_checkpoint
from edgeslim.train.config import TrainConfig
from edgeslim.train.schedule import lr_at

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def cross_entropy(label_smoothing: float = 0.0) -> LossFn:
    """The default loss: cross-entropy on the model's logits."""

    def loss_fn(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing), logits

    return loss_fn


class Trainer:
    """Train ``model`` in place (the verb is :meth:`fit`), checkpointing every epoch.

    Example:
        >>> # history = Trainer(model, TrainConfig(epochs=5), ckpt_dir="run/ckpt").fit(train, val)
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        *,
        loss_fn: LossFn | None = None,
        extra: nn.Module | None = None,
        ckpt_dir: str | Path | None = None,
        progress: bool = True,
    ) -> None:
        self.model = model
        self.config = config
        self.loss_fn = loss_fn or cross_entropy(config.label_smoothing)
        self.extra = extra  # trainable helpers (e.g. distillation adapters), checkpointed too
        self.ckpt_dir = Path(ckpt_dir) if ckpt_dir else None
        self.progress = progress

    def _params(self) -> list[nn.Parameter]:
        mods = [self.model] + ([self.extra] if self.extra is not None else [])
        return [p for m in mods for p in m.parameters() if p.requires_grad]

    def _optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        decay = [p for p in self._params() if p.dim() > 1]
        no_decay = [p for p in self._params() if p.dim() <= 1]  # no weight decay on BN/bias
        groups = [
            {"params": decay, "weight_decay": c.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if c.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=c.lr)
        return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, nesterov=c.momentum > 0)

    def fit(self, train_ds: Dataset, val_ds: Dataset | None = None) -> list[dict]:
        """Train for ``config.epochs`` (resuming a matching checkpoint); return per-epoch logs."""
        c = self.config
        device = torch.device(c.device)
        self.model.to(device)
        if self.extra is not None:
            self.extra.to(device)
        opt = self._optimizer()
        history: list[dict] = []
        start, best = 0, -1.0
        if self.ckpt_dir is not None:
            start, history, best = self._resume(opt)
        steps = math.ceil(len(train_ds) / c.batch_size)
        total, warmup = c.epochs * steps, int(c.warmup_epochs * steps)
        val_loader = make_loader(val_ds, 256, shuffle=False) if val_ds is not None else None
        was_training = self.model.training
        try:
            for epoch in range(start, c.epochs):
                t0 = time.perf_counter()
                loss, acc = self._epoch(opt, train_ds, epoch, steps, total, warmup, device)
                log = {
                    "epoch": epoch + 1,
                    "lr": opt.param_groups[0]["lr"],
                    "train_loss": loss,
                    "train_top1": acc,
                    "val_top1": None,
                }
                if val_loader is not None:
                    log["val_top1"] = evaluate_model(self.model, val_loader)["top1"]
                log["seconds"] = time.perf_counter() - t0
                history.append(log)
                improved = log["val_top1"] is not None and log["val_top1"] > best
                best = max(best, log["val_top1"] or -1.0)
                self._save(opt, epoch, history, best)
                if self.progress:
                    tqdm.write(_fmt_log(log, c.epochs))
                if c.patience and not improved and _stalled(history, c.patience):
                    tqdm.write(f"early stop: no val improvement in {c.patience} epochs")
                    break
        finally:
            self.model.train(was_training)
        return history

    def _epoch(self, opt, train_ds, epoch, steps, total, warmup, device) -> tuple[float, float]:
        c = self.config
        seed = c.seed * 100_003 + epoch
        torch.manual_seed(seed)  # augmentation and dropout draw from the global generator
        loader = make_loader(train_ds, c.batch_size, shuffle=True, seed=seed)
        self.model.train()
        if self.extra is not None:
            self.extra.train()
        loss_sum = correct = n = 0
        bar = tqdm(
            loader, desc=f"epoch {epoch + 1}/{c.epochs}", leave=False, disable=not self.progress
        )
        for i, (x, y) in enumerate(bar):
            lr = lr_at(epoch * steps + i, total, c.lr, c.schedule, warmup)
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = x.to(device), y.to(device)
            with torch.autocast(device.type, enabled=c.amp and device.type == "cuda"):
                loss, logits = self.loss_fn(self.model, x, y)
            if not torch.isfinite(loss):
                raise EdgeslimError(
                    f"training diverged: loss is {loss.item()} at epoch {epoch + 1} "
                    f"step {i}; lower the learning rate"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if c.grad_clip:
                torch.nn.utils.clip_grad_norm_(self._params(), c.grad_clip)
            opt.step()
            loss_sum += loss.item() * y.numel()
            correct += int((logits.detach().argmax(1) == y).sum())
            n += y.numel()
            bar.set_postfix(loss=f"{loss_sum / n:.3f}", acc=f"{correct / n:.3f}")
        return loss_sum / max(n, 1), correct / max(n, 1)

    def _save(self, opt, epoch: int, history: list[dict], best: float) -> None:
        if self.ckpt_dir is None:
            return
        state = {
            "epoch": epoch,
            "history": history,
            "best": best,
            "optimizer": opt.state_dict(),
            "fingerprint": self.config.fingerprint(),
            "extra": self.extra.state_dict() if self.extra is not None else {},
        }
        save_checkpoint(self.ckpt_dir, self.model, state)

    def _resume(self, opt) -> tuple[int, list[dict], float]:
        assert self.ckpt_dir is not None
        state = load_checkpoint(self.ckpt_dir, self.model)
        if state is None:
            return 0, [], -1.0
        if state.get("fingerprint") != self.config.fingerprint():
            raise EdgeslimError(
                f"checkpoint in {self.ckpt_dir} was made with other training "
                "settings; delete it or use another output directory"
            )
        opt.load_state_dict(state["optimizer"])
        if self.extra is not None and state.get("extra"):
            self.extra.load_state_dict(state["extra"])
        tqdm.write(f"resuming from {self.ckpt_dir} after epoch {state['epoch'] + 1}")
        return state["epoch"] + 1, list(state["history"]), float(state["best"])


def _stalled(history: list[dict], patience: int) -> bool:
    vals = [h["val_top1"] for h in history if h["val_top1"] is not None]
    return len(vals) > patience and max(vals[-patience:]) <= max(vals[:-patience])


def _fmt_log(log: dict, epochs: int) -> str:
    val = f" val {100 * log['val_top1']:.2f}%" if log["val_top1"] is not None else ""
    return (
        f"epoch {log['epoch']}/{epochs} loss {log['train_loss']:.4f} "
        f"train {100 * log['train_top1']:.2f}%{val} lr {log['lr']:.4g} ({log['seconds']:.1f}s)"
    )
