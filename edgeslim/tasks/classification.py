"""``classification`` and ``sequence_classification``: one label per sample, scored by top-1.

Both minimise cross-entropy on ``(batch, classes)`` logits, report top-1 (primary)
and decode by argmax. They differ in what goes in: images (a float tensor) for
``classification``; token ids (an int64 tensor, or a dict such as
``{"input_ids", "attention_mask"}`` passed as keyword arguments) for
``sequence_classification``, whose models may return a transformers output with
``.logits``.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from edgeslim.core.errors import EdgeslimError
from edgeslim.tasks.base import MetricSpec, Task, register_task
from edgeslim.tasks.batch import Inputs, batch_len
from edgeslim.tasks.compare import ParitySpec, kd_with
from edgeslim.tasks.metrics import TopK


def cross_entropy(
    outputs: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy of ``(N, C, ...)`` logits against class ids (``F.cross_entropy``)."""
    return F.cross_entropy(outputs, targets, label_smoothing=label_smoothing)


def argmax_classes(outputs: torch.Tensor) -> torch.Tensor:
    """Predicted class per sample (or per pixel): argmax over dim 1."""
    return outputs.argmax(1)


def check_logits(outputs: torch.Tensor, inputs: Inputs, num_classes: int | None) -> None:
    """Outputs must be ``(batch, classes)``, with ``num_classes`` columns when known."""
    n = batch_len(inputs)
    if outputs.dim() != 2 or outputs.shape[0] != n:
        raise EdgeslimError(
            f"model output shape {tuple(outputs.shape)} is not (batch, classes) for a batch of {n}"
        )
    if num_classes is not None and outputs.shape[1] != num_classes:
        raise EdgeslimError(
            f"model outputs {outputs.shape[1]} classes but the data has {num_classes}"
        )


def uniform_top1(num_classes: int) -> float:
    """Top-1 of guessing uniformly among ``num_classes`` classes: the chance level."""
    return 1.0 / max(1, num_classes)


def top1() -> MetricSpec:
    return MetricSpec("top1", "top-1", higher_is_better=True, make=lambda: TopK(1))


CLASSIFICATION = register_task(
    Task(
        name="classification",
        loss=cross_entropy,
        metrics=(top1(),),
        primary="top1",
        decode=argmax_classes,
        parity=ParitySpec("top1_agreement", atol=1e-3, min_agreement=0.99),
        distill=kd_with(cross_entropy),
        check_output=check_logits,
        chance=uniform_top1,
        description="one class per image; cross-entropy, top-1",
    )
)

SEQUENCE_CLASSIFICATION = register_task(
    replace(
        CLASSIFICATION,
        name="sequence_classification",
        description="one class per token sequence (BERT); cross-entropy, top-1",
    )
)
