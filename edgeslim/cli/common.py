"""Arguments and helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.errors import EdgeslimError
from edgeslim.models.inputs import InputSpec, parse_shape
from edgeslim.models.spec import LoadedModel, load_model


def _arg_type(fn):
    """Turn an ``EdgeslimError`` from a parser into argparse's one-line usage error."""

    def wrapped(text: str):
        try:
            return fn(text)
        except EdgeslimError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    wrapped.__name__ = fn.__name__
    return wrapped


def add_model_args(p: argparse.ArgumentParser, positional: str = "model") -> None:
    p.add_argument(positional, help="zoo name, saved model dir, file.py:factory or hf:config.json")
    p.add_argument(
        "--input-shape",
        type=shape_arg,
        default=None,
        help="example input, batch first, e.g. 1,3,224,224 (zoo models have defaults)",
    )
    p.add_argument("--num-classes", type=int, default=None, help="override the classifier width")


DATA_ARGS = ("data", "calib_data", "eval_data")


def model_from_args(args: argparse.Namespace, spec: str | None = None) -> LoadedModel:
    """The command's model; a token model takes its sequence length from the command's data.

    An ``hf:`` config's default input is its longest position (``max_position_embeddings``);
    with text data given (``--data``, ``--calib-data``) and no ``--input-shape``, the
    example input gets the data's sequence length instead, so calibration, export and
    timing all run at the length the data has.
    """
    lm = load_model(spec or args.model, num_classes=args.num_classes, input_shape=args.input_shape)
    if args.input_shape is not None or lm.input is None or lm.input.dtype != "int64":
        return lm
    data = next((getattr(args, k) for k in DATA_ARGS if getattr(args, k, None)), None)
    if data is None:
        return lm
    from dataclasses import replace

    from edgeslim.data import dataset_info

    shape = dataset_info(data).input_shape
    if len(shape) == 1 and lm.input.shape[1:] != tuple(shape):
        lm = replace(lm, input=InputSpec((1, *shape), "int64", lm.input.vocab_size))
    return lm


def parse_batches(text: str) -> tuple[int, ...]:
    try:
        batches = tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise EdgeslimError(f"bad --batch {text!r}: expected integers like 1,8") from None
    if not batches or any(b < 1 for b in batches):
        raise EdgeslimError(f"bad --batch {text!r}: batch sizes must be positive")
    return batches


shape_arg = _arg_type(parse_shape)
batches_arg = _arg_type(parse_batches)


def model_normalization(lm: LoadedModel):
    """The normalization statistics ``lm`` was trained with (None: the dataset's own).

    Saved models trained on ``npz:`` or ``imagefolder:`` data carry them in their metadata.
    """
    from edgeslim.data.stats import Normalization

    return Normalization.from_meta(lm.meta)


def write_json(path: str | Path, obj: object) -> None:
    """Write ``obj`` as pretty JSON, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def refuse_overwrite(src: str, dest: str | Path) -> None:
    """Never write an output over the user's input model."""
    s, d = Path(src).expanduser(), Path(dest).expanduser()
    if s.exists() and d.exists() and s.resolve() == d.resolve():
        raise EdgeslimError(f"output {dest} is the input model; choose another output path")


def parse_lr(text: str) -> float | str:
    """A positive learning rate, or ``auto`` for the LR range test."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        lr = float(text)
    except ValueError:
        raise EdgeslimError(f"bad --lr {text!r}: expected a number like 0.1 or 'auto'") from None
    if not lr > 0:
        raise EdgeslimError(f"bad --lr {text!r}: must be > 0")
    return lr


lr_arg = _arg_type(parse_lr)


def add_train_args(p: argparse.ArgumentParser) -> None:
    """The training options every training command shares (see :func:`train_config`)."""
    p.add_argument(
        "--batch-size", type=int, default=None, help="default: the task's (128; detection 16)"
    )
    p.add_argument(
        "--lr",
        type=lr_arg,
        default=None,
        help="peak learning rate, or 'auto': pick it with an LR range test first "
        "(default: the task's: 0.1; detection 0.01, YOLOv5's)",
    )
    p.add_argument(
        "--momentum", type=float, default=None, help="SGD momentum (default 0.9; detection 0.937)"
    )
    p.add_argument(
        "--warmup-epochs",
        type=float,
        default=None,
        help="linear LR warm-up (default: 15%% of the run, at most 3 epochs; 0 turns it off)",
    )
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adamw"))
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", default="cosine", choices=("cosine", "step", "constant"))
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument(
        "--augment",
        choices=("default", "strong"),
        default="default",
        help="strong (detectors): YOLOv5's mosaic, scale, HSV and flip via albumentations",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=None,
        metavar="DECAY",
        help="evaluate and keep a moving average of the weights (YOLOv5: 0.9999)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    add_speed_args(p)


def add_speed_args(p: argparse.ArgumentParser) -> None:
    """``--amp`` and ``--channels-last``: how any training (or fine-tuning) runs faster."""
    p.add_argument(
        "--amp",
        action="store_true",
        help="mixed precision: fp16 autocast on CUDA, bf16 on CPUs with native bf16",
    )
    p.add_argument("--channels-last", action="store_true", help="train conv nets in NHWC")


def task_defaults(data: str | None) -> dict:
    """The training options the data's task sets (``Task.train_defaults``; ``{}`` without data)."""
    if not data:
        return {}
    from edgeslim.data import dataset_info
    from edgeslim.tasks import get_task

    return dict(get_task(dataset_info(data).task).train_defaults)


def train_config(args: argparse.Namespace):
    """The TrainConfig that the :func:`add_train_args` options ask for.

    An option left out takes the data's task's default (``Task.train_defaults``), then
    TrainConfig's own.
    """
    from edgeslim.train.config import TrainConfig

    given = {k: getattr(args, k) for k in ("batch_size", "lr", "momentum")}
    chosen = task_defaults(getattr(args, "data", None))
    chosen.update({k: v for k, v in given.items() if v is not None})
    return TrainConfig(
        **chosen,
        epochs=args.epochs,
        warmup_epochs=args.warmup_epochs,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        label_smoothing=args.label_smoothing,
        augment=False if args.no_augment else ("strong" if args.augment == "strong" else True),
        ema=args.ema,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        channels_last=args.channels_last,
    )
