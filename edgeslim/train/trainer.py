"""The one training loop used by ``train``, pruning fine-tune and distillation.

- LR is a pure function of the step (:mod:`edgeslim.train.schedule`), and every
  epoch reseeds shuffling, augmentation and dropout from ``(seed, epoch)``, so a
  run killed mid-epoch and resumed from its last checkpoint ends bit-identical
  to an uninterrupted one on CPU.
- Losses plug in as ``loss_fn(model, x, y) -> (loss, logits)``; distillation
  passes a loss that also runs a frozen teacher, plus its adapters as ``extra``.
- Under ``torchrun`` the same code trains data-parallel: the model, ``extra`` and
  the loss run inside one ``DistributedDataParallel`` module (so adapter gradients
  are averaged too), ``DistributedSampler`` shards each epoch's permutation, metrics
  are summed over processes, and only rank 0 writes checkpoints and logs
  (see :mod:`edgeslim.train.distributed`).
- AMP on CUDA: bf16 autocast where the GPU supports it, else fp16 with a ``GradScaler``
  (Micikevicius et al., "Mixed Precision Training", ICLR 2018).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode
from edgeslim.train.checkpoint import load_checkpoint, save_checkpoint
from edgeslim.train.config import TrainConfig
from edgeslim.train.distributed import DistContext
from edgeslim.train.layout import ChannelsLast
from edgeslim.train.optim import build_optimizer
from edgeslim.train.schedule import lr_at, warmup_steps

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def cross_entropy(label_smoothing: float = 0.0) -> LossFn:
    """The default loss: cross-entropy on the model's logits."""

    def loss_fn(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing), logits

    return loss_fn


class _Objective(nn.Module):
    """Model, trainable ``extra`` and loss as one module: what DDP wraps and syncs."""

    def __init__(self, model: nn.Module, extra: nn.Module | None, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.extra = extra
        self._loss = (loss_fn,)  # a tuple, so a Module loss is not registered a second time

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._loss[0](self.model, x, y)


class Trainer:
    """Train ``model`` in place (the verb is :meth:`fit`), checkpointing every epoch.

    Args:
        model: the model to train (moved to ``config.device``).
        config: everything that determines the run.
        loss_fn: ``loss_fn(model, x, y) -> (loss, logits)``; default cross-entropy.
        extra: trainable helpers outside the model (adapters, auxiliary heads): optimised,
            synced under DDP and checkpointed with the model.
        ckpt_dir: where ``last.safetensors`` / ``last_state.pt`` go; a rerun resumes.
        progress: progress bars and per-epoch lines (rank 0 only).
        on_epoch: called with the history after every epoch (e.g. a
            :class:`~edgeslim.train.chance.ChanceGuard`); an ``EdgeslimError`` stops the run.

    ``config.lr == "auto"`` runs the LR range test (:mod:`edgeslim.train.lr_finder`) on a
    copy of the model first and trains at the rate it suggests (kept in ``lr_range``).

    Example:
        >>> # history = Trainer(model, TrainConfig(epochs=5), ckpt_dir="run/ckpt").fit(train, val)
        >>> # torchrun --standalone --nproc_per_node=2 my_script.py   # same code, data-parallel
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
        on_epoch: Callable[[list[dict]], None] | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.loss_fn = loss_fn or cross_entropy(config.label_smoothing)
        self.extra = extra  # trainable helpers (e.g. distillation adapters), checkpointed too
        self.ckpt_dir = Path(ckpt_dir) if ckpt_dir else None
        self.progress = progress
        self.ctx: DistContext | None = None  # set by fit()
        self.on_epoch = on_epoch
        self.lr_range = None  # the LR range test's result when config.lr == "auto"

    def _params(self) -> list[nn.Parameter]:
        mods = [self.model] + ([self.extra] if self.extra is not None else [])
        return [p for m in mods for p in m.parameters() if p.requires_grad]

    def _optimizer(self) -> torch.optim.Optimizer:
        return build_optimizer(self._params(), self.config)

    def _say(self, text: str) -> None:
        if self.progress and self.ctx is not None and self.ctx.is_main:
            tqdm.write(text)

    def fit(self, train_ds: Dataset, val_ds: Dataset | None = None) -> list[dict]:
        """Train for ``config.epochs`` (resuming a matching checkpoint); return per-epoch logs.

        Each log is ``{epoch, lr, train_loss, train_top1, val_top1, seconds}``; losses and
        accuracies are over the whole (global) epoch, identical on every process.
        """
        c = self.config
        if c.device.startswith("cuda") and not torch.cuda.is_available():
            raise EdgeslimError(f"device {c.device!r} requested but CUDA is not available")
        self.ctx = ctx = DistContext.from_env(c.device)
        if c.lr == "auto":
            from edgeslim.train.lr_finder import find_lr

            # deterministic, so a rerun finds the same rate and resumes its checkpoint
            r = find_lr(
                self.model, train_ds, c, loss_fn=self.loss_fn, extra=self.extra, device=ctx.device
            )
            self.lr_range, self.config = r, replace(c, lr=r.suggestion)
            self._say(
                f"lr auto: {r.suggestion:.4g} (a tenth of the minimum-loss rate "
                f"{r.min_loss_lr:.3g}; steepest descent at {r.steepest_lr:.3g})"
            )
        return self._fit(ctx, train_ds, val_ds)

    def _fit(self, ctx: DistContext, train_ds: Dataset, val_ds: Dataset | None) -> list[dict]:
        c = self.config
        self.model.to(ctx.device)
        if self.extra is not None:
            self.extra.to(ctx.device)
        opt = self._optimizer()
        history: list[dict] = []
        start, best = 0, -1.0
        if self.ckpt_dir is not None:
            start, history, best = self._resume(opt)
        layout = ChannelsLast([self.model, self.extra]) if c.channels_last else None
        objective: nn.Module = _Objective(self.model, self.extra, self.loss_fn)
        if ctx.distributed:
            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            objective = DistributedDataParallel(objective, device_ids=ids)
        steps = math.ceil(math.ceil(len(train_ds) / ctx.world_size) / ctx.local_batch(c.batch_size))
        total = c.epochs * steps
        warmup = warmup_steps(c.warmup_epochs, steps, total)
        was_training = self.model.training
        try:
            for epoch in range(start, c.epochs):
                t0 = time.perf_counter()
                loss, acc = self._epoch(objective, opt, train_ds, epoch, steps, total, warmup)
                log = {
                    "epoch": epoch + 1,
                    "lr": opt.param_groups[0]["lr"],
                    "train_loss": loss,
                    "train_top1": acc,
                    "val_top1": self._evaluate(val_ds) if val_ds is not None else None,
                }
                log["seconds"] = time.perf_counter() - t0
                history.append(log)
                improved = log["val_top1"] is not None and log["val_top1"] > best
                best = max(best, log["val_top1"] or -1.0)
                self._save(opt, epoch, history, best)
                self._say(_fmt_log(log, c.epochs))
                if self.on_epoch is not None:
                    self.on_epoch(history)
                if c.patience and not improved and _stalled(history, c.patience):
                    self._say(f"early stop: no val improvement in {c.patience} epochs")
                    break
        finally:
            self.model.train(was_training)
            if layout is not None:
                layout.restore()  # hand back a standard model
        return history

    def _amp(self) -> tuple[bool, torch.dtype, torch.amp.GradScaler | None]:
        assert self.ctx is not None
        if not self.config.amp:
            return False, torch.float32, None
        if self.ctx.device.type == "cpu":
            # bf16 autocast on CPU only pays with native bf16 dot products (AVX512-BF16 or AMX)
            return cpu_has_bf16(), torch.bfloat16, None
        if self.ctx.device.type != "cuda":
            return False, torch.float32, None
        if torch.cuda.is_bf16_supported():
            return True, torch.bfloat16, None  # bf16 has fp32's range: no loss scaling needed
        return True, torch.float16, torch.amp.GradScaler("cuda")

    def _epoch(self, objective, opt, train_ds, epoch, steps, total, warmup) -> tuple[float, float]:
        c, ctx = self.config, self.ctx
        assert ctx is not None
        seed = c.seed * 100_003 + epoch
        # augmentation and dropout draw from the global generator; ranks draw different masks
        torch.manual_seed(seed + 1_000_003 * ctx.rank)
        loader = ctx.train_loader(train_ds, c.batch_size, seed=c.seed * 100_003, epoch=epoch)
        objective.train()
        use_amp, amp_dtype, scaler = self._amp()
        loss_sum = correct = n = 0.0
        bar = tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{c.epochs}",
            leave=False,
            disable=not (self.progress and ctx.is_main),
        )
        for i, (x, y) in enumerate(bar):
            lr = lr_at(epoch * steps + i, total, c.lr, c.schedule, warmup)
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
            if c.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(ctx.device.type, dtype=amp_dtype, enabled=use_amp):
                loss, logits = objective(x, y)
            if not torch.isfinite(loss):
                raise EdgeslimError(
                    f"training diverged: loss is {loss.item()} at epoch {epoch + 1} "
                    f"step {i}; lower the learning rate"
                )
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
            else:
                loss.backward()
            if c.grad_clip:
                torch.nn.utils.clip_grad_norm_(self._params(), c.grad_clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            loss_sum += loss.item() * y.numel()
            correct += int((logits.detach().argmax(1) == y).sum())
            n += y.numel()
            bar.set_postfix(loss=f"{loss_sum / n:.3f}", acc=f"{correct / n:.3f}")
        loss_sum, correct, n = ctx.all_sum([loss_sum, correct, n])
        return loss_sum / max(n, 1), correct / max(n, 1)

    def _evaluate(self, ds: Dataset) -> float:
        """Top-1 over all of ``ds``: each process scores its own non-overlapping shard."""
        ctx = self.ctx
        assert ctx is not None
        loader = DataLoader(Subset(ds, ctx.shard(len(ds))), batch_size=256)
        correct = n = 0
        with eval_mode(self.model), torch.inference_mode():
            for x, y in loader:
                logits = self.model(x.to(ctx.device))
                correct += int((logits.argmax(1).cpu() == y).sum())
                n += y.numel()
        correct, n = ctx.all_sum([correct, n])
        if n == 0:
            raise EdgeslimError("the validation split is empty")
        return correct / n

    def _save(self, opt, epoch: int, history: list[dict], best: float) -> None:
        if self.ckpt_dir is None:
            return
        assert self.ctx is not None
        if self.ctx.is_main:
            state = {
                "epoch": epoch,
                "history": history,
                "best": best,
                "optimizer": opt.state_dict(),
                "fingerprint": self.config.fingerprint(),
                "extra": self.extra.state_dict() if self.extra is not None else {},
            }
            save_checkpoint(self.ckpt_dir, self.model, state)
        self.ctx.barrier()  # nobody runs ahead of a checkpoint that is still being written

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
        self._say(f"resuming from {self.ckpt_dir} after epoch {state['epoch'] + 1}")
        return state["epoch"] + 1, list(state["history"]), float(state["best"])


def cpu_has_bf16() -> bool:
    """True when this CPU multiplies bf16 natively (AVX512-BF16 or AMX)."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


def _stalled(history: list[dict], patience: int) -> bool:
    vals = [h["val_top1"] for h in history if h["val_top1"] is not None]
    return len(vals) > patience and max(vals[-patience:]) <= max(vals[:-patience])


def _fmt_log(log: dict, epochs: int) -> str:
    val = f" val {100 * log['val_top1']:.2f}%" if log["val_top1"] is not None else ""
    return (
        f"epoch {log['epoch']}/{epochs} loss {log['train_loss']:.4f} "
        f"train {100 * log['train_top1']:.2f}%{val} lr {log['lr']:.4g} ({log['seconds']:.1f}s)"
    )
