"""The one training loop used by ``train``, pruning fine-tune and distillation.

- LR is a pure function of the step (:mod:`edgeslim.train.schedule`), and every
  epoch reseeds shuffling, augmentation and dropout from ``(seed, epoch)``, so a
  run killed mid-epoch and resumed from its last checkpoint ends bit-identical
  to an uninterrupted one on CPU.
- The task (:mod:`edgeslim.tasks`) says how a batch splits into inputs and targets,
  the default loss, and the metrics logged per epoch (``train_<primary>``,
  ``val_<metric>``; ``train_top1`` / ``val_top1`` for classification); "best" and
  early stopping follow the primary metric's direction.
- Losses plug in as ``loss_fn(model, x, y) -> (loss, outputs)``; distillation
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
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.finite import first_nonfinite
from edgeslim.core.modes import ModeSnapshot, eval_mode
from edgeslim.tasks import Task, batch_len, get_task, move
from edgeslim.train.checkpoint import load_checkpoint, save_checkpoint
from edgeslim.train.config import TrainConfig
from edgeslim.train.distributed import DistContext
from edgeslim.train.layout import ChannelsLast
from edgeslim.train.optim import build_optimizer
from edgeslim.train.schedule import lr_at, warmup_steps

LossFn = Callable[[nn.Module, Any, Any], tuple[torch.Tensor, torch.Tensor]]


def task_loss(task: str | Task = "classification", label_smoothing: float = 0.0) -> LossFn:
    """The default loss: the task's loss on the model's outputs.

    Example:
        >>> loss_fn = task_loss("segmentation")
        >>> # loss, outputs = loss_fn(model, images, masks)
    """
    t = get_task(task)

    def loss_fn(model: nn.Module, x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
        out = t.forward(model, x)
        return t.loss(out, y, label_smoothing), out

    return loss_fn


def cross_entropy(label_smoothing: float = 0.0) -> LossFn:
    """Cross-entropy on the model's logits: the classification task's loss."""
    return task_loss("classification", label_smoothing)


class _Objective(nn.Module):
    """Model, trainable ``extra`` and loss as one module: what DDP wraps and syncs."""

    def __init__(self, model: nn.Module, extra: nn.Module | None, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.extra = extra
        self._loss = (loss_fn,)  # a tuple, so a Module loss is not registered a second time

    def forward(self, x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self._loss[0](self.model, x, y)


class Trainer:
    """Train ``model`` in place (the verb is :meth:`fit`), checkpointing every epoch.

    Args:
        model: the model to train (moved to ``config.device``).
        config: everything that determines the run.
        loss_fn: ``loss_fn(model, x, y) -> (loss, outputs)``; default the task's loss.
        extra: trainable helpers outside the model (adapters, auxiliary heads): optimised,
            synced under DDP and checkpointed with the model.
        ckpt_dir: where ``last.safetensors`` / ``last_state.pt`` go; a rerun resumes.
        progress: progress bars and per-epoch lines (rank 0 only).
        task: what the data is (a :mod:`edgeslim.tasks` name or entry): batches, the
            default loss, the metrics logged and the direction of "best".
        on_epoch: called with the history after every epoch (e.g. a
            :class:`~edgeslim.train.chance.ChanceGuard`); an ``EdgeslimError`` stops the run.
        on_step: called after every optimizer step (e.g. a sparsity schedule's
            :meth:`~edgeslim.sparsity.Sparsifier.step`).

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
        task: str | Task = "classification",
        on_epoch: Callable[[list[dict]], None] | None = None,
        on_step: Callable[[], object] | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.task = get_task(task)
        self.loss_fn = loss_fn or task_loss(self.task, config.label_smoothing)
        self.extra = extra  # trainable helpers (e.g. distillation adapters), checkpointed too
        self.ckpt_dir = Path(ckpt_dir) if ckpt_dir else None
        self.progress = progress
        self.ctx: DistContext | None = None  # set by fit()
        self.on_epoch = on_epoch
        self.on_step = on_step
        self.lr_range = None  # the LR range test's result when config.lr == "auto"
        self.ema = None  # the weights' moving average when config.ema (set by fit())

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

        Each log is ``{epoch, lr, train_loss, train_<primary>, val_<metric>..., seconds}``
        (``train_top1``, ``val_top1`` for classification; ``val_*`` are None without
        validation data); losses and metrics are over the whole (global) epoch,
        identical on every process.
        """
        c = self.config
        if c.device.startswith("cuda") and not torch.cuda.is_available():
            raise EdgeslimError(f"device {c.device!r} requested but CUDA is not available")
        self.ctx = ctx = DistContext.from_env(c.device)
        if c.lr == "auto":
            from edgeslim.train.lr_finder import find_lr

            # deterministic, so a rerun finds the same rate and resumes its checkpoint
            r = find_lr(
                self.model,
                train_ds,
                c,
                loss_fn=self.loss_fn,
                extra=self.extra,
                task=self.task,
                device=ctx.device,
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
        start, best = 0, -math.inf
        ema_state = None
        if self.ckpt_dir is not None:
            start, history, best, ema_state = self._resume(opt)
        layout = ChannelsLast([self.model, self.extra]) if c.channels_last else None
        if c.ema:
            from edgeslim.train.ema import ema_model

            self.ema = ema_model(self.model, c.ema)
            if ema_state is not None:
                self.ema.load_state_dict(ema_state)
        objective: nn.Module = _Objective(self.model, self.extra, self.loss_fn)
        if ctx.distributed:
            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            objective = DistributedDataParallel(objective, device_ids=ids)
        steps = math.ceil(math.ceil(len(train_ds) / ctx.world_size) / ctx.local_batch(c.batch_size))
        total = c.epochs * steps
        warmup = warmup_steps(c.warmup_epochs, steps, total)
        modes = ModeSnapshot.of(self.model)  # per submodule: a frozen BN stays frozen after
        try:
            for epoch in range(start, c.epochs):
                t0 = time.perf_counter()
                loss, acc = self._epoch(objective, opt, train_ds, epoch, steps, total, warmup)
                log = {
                    "epoch": epoch + 1,
                    "lr": opt.param_groups[0]["lr"],
                    "train_loss": loss,
                    f"train_{self.task.primary}": acc,
                    **self._val_log(val_ds),
                }
                log["seconds"] = time.perf_counter() - t0
                if first_nonfinite(self.model) is not None:  # never checkpoint NaN weights
                    raise EdgeslimError(self._diverged("weights became NaN or Inf", None, epoch))
                history.append(log)
                score = self._score(log)
                improved = score is not None and score > best
                best = max(best, score if score is not None else -math.inf)
                self._save(opt, epoch, history, best)
                self._say(_fmt_log(log, c.epochs, self.task))
                if self.on_epoch is not None:
                    self.on_epoch(history)
                scores = [s for s in map(self._score, history) if s is not None]
                if c.patience and not improved and _stalled(scores, c.patience):
                    self._say(f"early stop: no val improvement in {c.patience} epochs")
                    break
            if self.ema is not None:  # the averaged weights are the result, as YOLOv5 ships
                self.model.load_state_dict(self.ema.module.state_dict())
        finally:
            modes.restore(self.model)
            if layout is not None:
                layout.restore()  # hand back a standard model
        return history

    def _show(self, bar, loss: float, metric) -> float:
        """Show the running loss and metric; return when to refresh them next.

        A metric such as COCO mAP costs time that grows with the epoch's batches, so the
        bar refreshes it at most every 2 s and at least 10 compute-times apart: scoring it
        every step made an epoch of ``driving`` quadratic (3 s a step by its end).
        """
        t = time.monotonic()
        bar.set_postfix(loss=f"{loss:.3f}", **{self.task.primary: f"{metric.compute():.3f}"})
        now = time.monotonic()
        return now + max(2.0, 10 * (now - t))

    def _diverged(self, what: str, x: object, epoch: int, step: int | None = None) -> str:
        """One line: what went non-finite, where, why (the data or the run) and what was kept.

        The step that made the loss NaN is never applied, and a checkpoint is written only
        after an epoch whose weights are finite, so the last good epoch survives on disk.
        """
        at = f"epoch {epoch + 1}" + (f" step {step}" if step is not None else "")
        kept = (
            f"; the last good checkpoint (epoch {epoch}) is kept in {self.ckpt_dir}"
            if self.ckpt_dir is not None and epoch > 0
            else ""
        )
        if isinstance(x, torch.Tensor) and x.is_floating_point() and not torch.isfinite(x).all():
            return f"{what} at {at}: the input batch holds NaN or Inf; check the data{kept}"
        weight = first_nonfinite(self.model)
        where = f", weight {weight!r} is NaN or Inf" if weight else ""
        return (
            f"training diverged: {what} at {at}{where}; lower the learning rate "
            f"(or set grad_clip){kept}"
        )

    def _amp(self) -> tuple[bool, torch.dtype, torch.amp.GradScaler | None]:
        assert self.ctx is not None  # noqa: S101 - type narrowing; set by fit()
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
        assert ctx is not None  # noqa: S101 - type narrowing; set by fit()
        seed = c.seed * 100_003 + epoch
        # augmentation and dropout draw from the global generator; ranks draw different masks
        torch.manual_seed(seed + 1_000_003 * ctx.rank)
        loader = ctx.train_loader(
            train_ds, c.batch_size, seed=c.seed * 100_003, epoch=epoch, collate_fn=self.task.collate
        )
        objective.train()
        use_amp, amp_dtype, scaler = self._amp()
        loss_sum = n = 0.0
        metric = self.task.primary_metric.make()  # the headline metric on the training batches
        show_at = 0.0  # monotonic time of the bar's next metric refresh
        bar = tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{c.epochs}",
            leave=False,
            disable=not (self.progress and ctx.is_main),
        )
        for i, batch in enumerate(bar):
            lr = lr_at(epoch * steps + i, total, c.lr, c.schedule, warmup)
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = self.task.to_device(batch, ctx.device)
            if c.channels_last and torch.is_tensor(x) and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(ctx.device.type, dtype=amp_dtype, enabled=use_amp):
                loss, logits = objective(x, y)
            if not torch.isfinite(loss):
                raise EdgeslimError(self._diverged(f"loss is {loss.item()}", x, epoch, i))
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
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            if self.on_step is not None:
                self.on_step()
            b = batch_len(y)
            loss_sum += loss.item() * b
            metric.update(logits.detach(), y)
            n += b
            if not bar.disable and time.monotonic() >= show_at:
                show_at = self._show(bar, loss_sum / n, metric)
        totals = ctx.all_sum([loss_sum, n, *metric.state()])
        metric.load_state(totals[2:])
        return totals[0] / max(totals[1], 1), metric.compute()

    def _val_log(self, ds: Dataset | None) -> dict:
        """``{"val_<metric>": value}`` for every metric of the task (None without data)."""
        if ds is None:
            return {f"val_{m.name}": None for m in self.task.metrics}
        return {f"val_{k}": v for k, v in self._evaluate(ds).items()}

    def _score(self, log: dict) -> float | None:
        """The primary validation metric, signed so that larger is better."""
        v = log.get(f"val_{self.task.primary}")
        if v is None:
            return None
        return v if self.task.primary_metric.higher_is_better else -v

    def _evaluate(self, ds: Dataset) -> dict[str, float]:
        """Every metric over all of ``ds``: each process scores its own non-overlapping shard."""
        ctx = self.ctx
        assert ctx is not None  # noqa: S101 - type narrowing; set by fit()
        task = self.task
        loader = DataLoader(Subset(ds, ctx.shard(len(ds))), batch_size=256, collate_fn=task.collate)
        metrics = task.new_metrics()
        model = self.ema.module if self.ema is not None else self.model
        with eval_mode(model), torch.inference_mode():
            for batch in loader:
                x, y = task.split(batch)
                out = task.forward(model, move(x, ctx.device))
                metrics.update(out.float().cpu(), y)
        if ctx.all_sum([metrics.count])[0] == 0:
            raise EdgeslimError("the validation split is empty")
        metrics.load_state(ctx.all_sum(metrics.state()))
        return metrics.compute()

    def _save(self, opt, epoch: int, history: list[dict], best: float) -> None:
        if self.ckpt_dir is None:
            return
        assert self.ctx is not None  # noqa: S101 - type narrowing; set by fit()
        if self.ctx.is_main:
            state = {
                "epoch": epoch,
                "history": history,
                "best": best,
                "optimizer": opt.state_dict(),
                "fingerprint": self.config.fingerprint(),
                "extra": self.extra.state_dict() if self.extra is not None else {},
            }
            if self.ema is not None:
                state["ema"] = {k: v.contiguous() for k, v in self.ema.state_dict().items()}
            save_checkpoint(self.ckpt_dir, self.model, state)
        self.ctx.barrier()  # nobody runs ahead of a checkpoint that is still being written

    def _resume(self, opt) -> tuple[int, list[dict], float, dict | None]:
        assert self.ckpt_dir is not None  # noqa: S101 - callers check ckpt_dir first
        state = load_checkpoint(self.ckpt_dir, self.model)
        if state is None:
            return 0, [], -math.inf, None
        if state.get("fingerprint") != self.config.fingerprint():
            raise EdgeslimError(
                f"checkpoint in {self.ckpt_dir} was made with other training "
                "settings; delete it or use another output directory"
            )
        opt.load_state_dict(state["optimizer"])
        if self.extra is not None and state.get("extra"):
            self.extra.load_state_dict(state["extra"])
        self._say(f"resuming from {self.ckpt_dir} after epoch {state['epoch'] + 1}")
        epoch, best = state["epoch"] + 1, float(state["best"])
        return epoch, list(state["history"]), best, state.get("ema")


def cpu_has_bf16() -> bool:
    """True when this CPU multiplies bf16 natively (AVX512-BF16 or AMX)."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


def _stalled(scores: list[float], patience: int) -> bool:
    """No new best (larger is better) in the last ``patience`` scores."""
    return len(scores) > patience and max(scores[-patience:]) <= max(scores[:-patience])


def _fmt_log(log: dict, epochs: int, task: Task) -> str:
    m = task.primary_metric

    def show(v: float) -> str:
        return f"{100 * v:.2f}%" if m.percent else f"{v:.4g}"

    val = log.get(f"val_{m.name}")
    val_text = f" val {m.label} {show(val)}" if val is not None else ""
    return (
        f"epoch {log['epoch']}/{epochs} loss {log['train_loss']:.4f} "
        f"train {m.label} {show(log[f'train_{m.name}'])}{val_text} lr {log['lr']:.4g} "
        f"({log['seconds']:.1f}s)"
    )
