"""Train a model spec on a dataset spec and save it: the verb behind ``edgeslim train``.

:func:`pretrained` is the cached variant used by the demo and the default
pipeline: the trained model is keyed by everything that determines it and is
regenerated deterministically when missing.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from edgeslim.bench.accuracy import evaluate_model
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.paths import cache_dir
from edgeslim.data import (
    dataset_files,
    dataset_info,
    dataset_normalization,
    load_dataset,
    make_loader,
)
from edgeslim.data.stats import META_KEY
from edgeslim.models.inputs import InputSpec
from edgeslim.models.saved import is_saved_model, load_saved, save_model
from edgeslim.models.shipped import shipped_path
from edgeslim.models.spec import LoadedModel, load_model
from edgeslim.tasks import Task, get_task
from edgeslim.train.chance import chance_guard
from edgeslim.train.config import TrainConfig
from edgeslim.train.distributed import is_main_process
from edgeslim.train.trainer import Trainer


def train_model(
    spec: str,
    data: str,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    strict: bool = False,
) -> LoadedModel:
    """Train ``spec`` on ``data``; save it to ``out_dir`` (checkpoints in ``out_dir/checkpoints``).

    Zoo models get a head sized to the dataset. The dataset's task decides the loss and
    metrics; ``meta`` holds the task name, every test metric (``test_metrics``) and the
    primary one as ``test_<name>`` (``test_top1`` for classification), and the
    normalization statistics of ``npz:`` / ``imagefolder:`` data (computed from its train
    split), so that evaluating or exporting the saved model uses the same ones.
    A primary validation metric still at chance after the first epochs (for tasks that
    have a chance level, e.g. top-1 at 1/num_classes) is a warning, with ``strict`` an
    ``EdgeslimError`` (see :class:`~edgeslim.train.chance.ChanceGuard`).
    Under ``torchrun`` every process trains; only rank 0 evaluates and saves, the
    other ranks return the trained model without writing anything.

    Example:
        >>> # lm = train_model("resnet20", "signs", TrainConfig(epochs=8), "runs/r20")
    """
    info = dataset_info(data)
    lm = load_model(spec, num_classes=info.num_classes)
    if lm.input is None or lm.input.dtype == "float32":
        lm.input = InputSpec((1, *info.input_shape))
    else:  # token ids (hf: models): the data's sequence length
        lm.input = InputSpec((1, *info.input_shape), "int64", lm.input.vocab_size)
    task = get_task(info.task)
    _check_head(lm, info.num_classes, task)
    out_dir = Path(out_dir)
    trainer = Trainer(
        lm.model,
        config,
        ckpt_dir=out_dir / "checkpoints",
        progress=progress,
        task=task,
        on_epoch=chance_guard(task, info.num_classes, config.epochs, strict=strict),
    )
    history = trainer.fit(
        load_dataset(data, "train", augment=config.augment), load_dataset(data, "val")
    )
    if not is_main_process():
        return lm
    test = evaluate_model(
        lm.model, make_loader(load_dataset(data, "test"), 256, shuffle=False), task
    )
    lm.meta = {
        **lm.meta,
        "trained_on": data,
        "task": task.name,
        "train_config": asdict(config),
        "history": history,
        "test_metrics": {m.name: test[m.name] for m in task.metrics},
        f"test_{task.primary}": test[task.primary],
    }
    if trainer.lr_range is not None:
        lm.meta["lr_auto"] = trainer.config.lr
    norm = dataset_normalization(data)
    if norm is not None:
        lm.meta[META_KEY] = norm.to_meta()
    else:
        lm.meta.pop(META_KEY, None)  # trained on built-in data: its fixed statistics apply
    save_model(lm, out_dir, extra_files=dataset_files(data))  # text data: tokenizer.json
    return load_saved(out_dir)


def pretrained(spec: str, data: str, config: TrainConfig, *, progress: bool = True) -> LoadedModel:
    """A model trained with ``config``: shipped, from the cache, or else trained and cached.

    The package ships some trained models (:mod:`edgeslim.models.shipped`) under the same
    key as the cache; they are loaded read-only from the package.
    """
    path = pretrained_path(spec, data, config)
    shipped = shipped_path(path.name)
    if shipped is not None and not is_saved_model(path):
        if progress:
            print(f"using the shipped pre-trained {spec} ({shipped.name})")
        return load_saved(shipped)
    if is_saved_model(path):
        try:
            return load_saved(path)
        except EdgeslimError:
            shutil.rmtree(
                path, ignore_errors=True
            )  # a damaged cache entry is rebuilt, never trusted
    lm = train_model(spec, data, config, path, progress=progress)
    shutil.rmtree(path / "checkpoints", ignore_errors=True)
    (path / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    return lm


def pretrained_path(spec: str, data: str, config: TrainConfig) -> Path:
    """The cache directory :func:`pretrained` uses for this model, data and config."""
    name = spec
    if spec.startswith("hf:"):  # a transformers config: keyed by its content, not its path
        import hashlib

        from edgeslim.models.hf import load_config_dict

        text = json.dumps(load_config_dict(spec[3:]), sort_keys=True)
        name = f"hf_{Path(spec[3:]).stem}_{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    elif not spec.isidentifier():
        raise EdgeslimError(f"only zoo and hf: models can be cached-trained, not {spec!r}")
    version = dataset_info(data).version
    tag = data.replace(":", "_").replace("/", "_")
    key = "-".join(p for p in (name, tag, version, config.fingerprint()) if p)
    return cache_dir("models") / key


def _check_head(lm: LoadedModel, num_classes: int, task: Task) -> None:
    """Fail before training if the model cannot take this data or has the wrong head."""
    import torch

    from edgeslim.core.modes import eval_mode

    inp = lm.require_input()
    x = inp.example(batch=2)
    with eval_mode(lm.model), torch.no_grad():
        try:
            out = task.forward(lm.model, x)
        except RuntimeError as e:
            raise EdgeslimError(
                f"{lm.name} rejects inputs of shape {inp.shape}: {str(e).splitlines()[0]}"
            ) from None
    try:
        task.check_output(out, x, num_classes)
    except EdgeslimError as e:
        raise EdgeslimError(f"{lm.name} does not fit {task.name} data: {e}") from None
