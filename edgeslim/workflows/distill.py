"""Distil a student from teachers on a dataset and save it: the verb behind ``edgeslim distill``.

The student is trained by the one :class:`~edgeslim.train.trainer.Trainer` with a
:class:`~edgeslim.distill.distiller.Distiller` as its loss and ``extra``, so it
checkpoints every epoch, resumes after a kill and runs under ``torchrun``
unchanged. Teachers are loaded :class:`~edgeslim.models.spec.LoadedModel` s that
stay frozen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import safetensors.torch
from torch.utils.data import Dataset

from edgeslim.bench.accuracy import evaluate_model
from edgeslim.core.atomic import atomic_path
from edgeslim.data import dataset_files, dataset_info, load_dataset, make_loader
from edgeslim.distill.distiller import Distiller, parse_loss_names
from edgeslim.distill.losses import LOSSES, LossSpec
from edgeslim.distill.memo import MemoTeacher
from edgeslim.models.saved import save_model
from edgeslim.models.spec import LoadedModel
from edgeslim.train.config import TrainConfig
from edgeslim.train.distributed import is_main_process
from edgeslim.train.trainer import Trainer

EXTRA_FILE = "distill_extra.safetensors"  # adapters / auxiliary heads, next to the student


@dataclass
class DistillResult:
    """The trained student (weights in place), its objective and the per-epoch history."""

    student: LoadedModel
    distiller: Distiller
    history: list[dict]
    test_top1: float | None  # the task's primary test metric (top-1 for classification)


def distill_model(
    student: LoadedModel,
    teachers: Sequence[LoadedModel],
    data: str,
    losses: str,
    spec: LossSpec,
    config: TrainConfig,
    out_dir: str | Path | None = None,
    *,
    memoize: bool | None = None,
    train_data: Dataset | None = None,
    progress: bool = True,
    hard_labels: bool = True,
) -> DistillResult:
    """Train ``student`` on ``data`` with the named distillation ``losses``; save to ``out_dir``.

    Args:
        student: the model to train (in place); a zoo model, user model, pruned model, ...
        teachers: frozen teachers (empty for ``self``-distillation).
        data: dataset spec (``signs``, ``synthtext``, ``cifar10:DIR``, ...).
        losses: registry names joined by ``+`` (``kd``, ``kd+feature``, ``multi``, ...).
        spec: temperature, alpha, beta, layer mapping, teacher weights.
        config: the training run (epochs, lr, augmentation, seed, device, ...).
        out_dir: saved student + ``checkpoints/`` (resumable); None keeps it in memory.
        memoize: memoise teacher logits (default: when the data is not augmented and every
            loss reads logits only, where it is exact and saves the teachers' forward passes).
        train_data: train on this dataset instead of ``data``'s train split (e.g. a subset).
        progress: progress bars and per-epoch lines.
        hard_labels: False reads no label in the objective (TinyBERT's stages); the
            trainer still reports accuracy on the labels it is given.

    Example:
        >>> # r = distill_model(load_model("resnet20_half", num_classes=16),
        >>> #                   [pretrained("resnet56", "signs", TrainConfig(epochs=6))],
        >>> #                   "signs", "kd", LossSpec(temperature=4, alpha=0.9),
        >>> #                   TrainConfig(epochs=10), "runs/kd")
    """
    names = parse_loss_names(losses)
    logits_only = not any(LOSSES.get(n).needs_layers for n in names)
    if memoize is None:
        memoize = logits_only and not config.augment
    models = [MemoTeacher(t.model) if memoize and logits_only else t.model for t in teachers]
    train = train_data or load_dataset(data, "train", augment=config.augment)
    val = load_dataset(data, "val")
    example = next(iter(make_loader(val, 8, shuffle=False)))[0].to(config.device)
    student.model.to(config.device)
    task = dataset_info(data).task
    distiller = Distiller.build(student.model, models, names, spec, example, task, hard_labels)
    ckpt = Path(out_dir) / "checkpoints" if out_dir is not None else None
    trainer = Trainer(
        student.model,
        config,
        loss_fn=distiller,
        extra=distiller,
        ckpt_dir=ckpt,
        progress=progress,
        task=task,
    )
    history = trainer.fit(train, val)
    student.model.cpu()
    if not is_main_process():
        return DistillResult(student, distiller, history, None)
    test = evaluate_model(student.model, make_loader(load_dataset(data, "test"), 256, False), task)
    student.meta = {
        **student.meta,
        "trained_on": data,
        "distilled_from": [t.name for t in teachers],
        "distill": {"losses": list(names), "hard_labels": hard_labels, **asdict(spec)},
        "train_config": asdict(config),
        "history": history,
        "task": task,
        f"test_{test['primary']}": test[test["primary"]],
    }
    if out_dir is not None:
        save_model(student, out_dir, extra_files=dataset_files(data))  # text: tokenizer.json
        if len(distiller.state_dict()):
            with atomic_path(Path(out_dir) / EXTRA_FILE) as tmp:
                safetensors.torch.save_model(distiller.cpu(), str(tmp))
    return DistillResult(student, distiller, history, test[test["primary"]])
