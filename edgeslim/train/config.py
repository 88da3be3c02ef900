"""Training configuration: one frozen dataclass, validated on construction."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

from edgeslim.core.errors import EdgeslimError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and so its checkpoints' identity).

    Example:
        >>> TrainConfig(epochs=5, lr=0.05).batch_size
        128
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float | Literal["auto"] = 0.1  # "auto": LR range test first (edgeslim.train.lr_finder)
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # per-step LR; "step" divides by 10 at 50% and 75%
    warmup_epochs: float | None = None  # linear warm-up; None: 15% of the run, <= 3 epochs
    label_smoothing: float = 0.0
    grad_clip: float | None = None  # max global grad norm
    augment: bool | str = True  # "strong": detectors' mosaic, scale, colour (albumentations)
    ema: float | None = None  # moving average of the weights (YOLOv5: 0.9999), evaluated/kept
    patience: int | None = None  # early stopping on val top-1, in epochs
    seed: int = 0
    device: str = "cpu"
    amp: bool = False  # autocast: bf16 on CPUs with AVX512-BF16/AMX and on CUDA, else fp16
    channels_last: bool = False  # NHWC weights and inputs (oneDNN's fast conv layout on CPU)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise EdgeslimError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise EdgeslimError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr != "auto" and not (isinstance(self.lr, int | float) and self.lr > 0):
            raise EdgeslimError(f"lr must be > 0 or 'auto', got {self.lr!r}")
        if self.warmup_epochs is not None and not self.warmup_epochs >= 0:
            raise EdgeslimError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if self.optimizer not in OPTIMIZERS:
            raise EdgeslimError(
                f"optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise EdgeslimError(f"schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}")

    def fingerprint(self) -> str:
        """Hash of the fields that change results; a checkpoint resumes only under the same one."""
        d = {k: v for k, v in asdict(self).items() if k not in ("patience", "device")}
        for k in ("channels_last", "ema"):  # added later: keeps older checkpoints' identity
            if not d[k]:
                del d[k]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
