"""The four training steps of the learnable per-layer bit-width.

1. the float model (what the caller brings);
2. quantized weights with learned bits, activations in float, under the size
   (or BOPs) penalty, for ``weight_epochs``;
3. the input quantizers calibrated and switched on, still learning bits, for
   ``activation_epochs``;
4. the moving averages rounded to integer bits and frozen, then a fine-tune at
   ``finetune_lr_scale`` times the learning rate for ``finetune_epochs``.

Returns the QAT model, its method record, the history (each row tagged with its
step) and the learned bits per layer (:func:`edgeslim.quant.qat.learned_bits.bits_table`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace

from torch import nn

from edgeslim.core.methods import Record, apply
from edgeslim.data import dataset_info, load_dataset
from edgeslim.quant.qat.handler import freeze_
from edgeslim.quant.qat.learned_bits import (
    LearnedBitsConfig,
    average_bits,
    bits_penalty,
    bits_table,
    enable_inputs_,
    round_bits_,
)
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer, task_loss


def penalised(base: Callable, model: nn.Module, config: LearnedBitsConfig) -> Callable:
    """``base``'s loss plus the bits penalty of ``model``."""

    def loss_fn(m, x, y):
        loss, out = base(m, x, y)
        pen, _ = bits_penalty(model, config)
        return loss + pen, out

    return loss_fn


def train_learned_bits(
    model: nn.Module,
    config: LearnedBitsConfig,
    data: str,
    train: TrainConfig,
    *,
    calib,
    overrides: dict | None = None,
    loss_fn: Callable | None = None,
    ckpt_dir=None,
    progress: bool = True,
) -> tuple[nn.Module, Record, list[dict], list[dict]]:
    """Steps 2-4 on a copy of the float ``model`` (see the module docstring)."""
    task = dataset_info(data).task
    base = loss_fn or task_loss(task, train.label_smoothing)
    qmodel, record = apply(model, config, overrides=overrides, calib=calib)
    freeze_(qmodel, config, 0)
    train_set, val_set = load_dataset(data, "train", augment=True), load_dataset(data, "val")
    history: list[dict] = []

    def fit(step: str, epochs: int, cfg: TrainConfig, loss: Callable) -> None:
        if epochs == 0:
            return
        sub = None if ckpt_dir is None else f"{ckpt_dir}/{step}"
        rows = Trainer(
            qmodel,
            replace(cfg, epochs=epochs),
            loss_fn=loss,
            ckpt_dir=sub,
            progress=progress,
            task=task,
            on_epoch=lambda h: freeze_(qmodel, config, len(history) + len(h)),
        ).fit(train_set, val_set)
        bits = float(average_bits(qmodel).detach())
        history.extend({**r, "step": step, "avg_w_bits": bits} for r in copy.deepcopy(rows))

    fit("weights", config.weight_epochs, train, penalised(base, qmodel, config))
    enable_inputs_(qmodel, calib, config.calib_batches)
    fit("activations", config.activation_epochs, train, penalised(base, qmodel, config))
    round_bits_(qmodel)
    lr = train.lr * config.finetune_lr_scale if not isinstance(train.lr, str) else train.lr
    tiny = replace(train, lr=lr, warmup_epochs=0)
    fit("finetune", config.finetune_epochs, tiny, base)
    table = bits_table(qmodel)
    record.details["learned_bits"] = table
    record.details["avg_w_bits"] = float(average_bits(qmodel).detach())
    return qmodel.eval(), record, history, table
