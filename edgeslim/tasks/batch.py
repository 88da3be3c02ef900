"""Batches as data: split into inputs and targets, move to a device, feed a model.

A batch is whatever a dataset's samples collate to. Every built-in task uses
``(inputs, targets)`` pairs, where ``inputs`` is a tensor (images, token ids) or a
dict of tensors (``{"input_ids": ..., "attention_mask": ...}`` for a BERT), and
``targets`` a tensor (class ids, per-pixel class ids). Nested tuples, lists and
dicts are moved leaf by leaf, so a detection task's list of box tensors moves too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError

Inputs = Any  # a tensor, or a dict of tensors passed to the model as keyword arguments


def move(obj: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    """``obj`` with every tensor leaf on ``device`` (tuples, lists and dicts keep their shape).

    Example:
        >>> move({"input_ids": torch.zeros(2, 3)}, "cpu")["input_ids"].device.type
        'cpu'
    """
    if torch.is_tensor(obj):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, Mapping):
        return {k: move(v, device, non_blocking) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(move(v, device, non_blocking) for v in obj)
    return obj


def split_pair(batch: Any) -> tuple[Inputs, Any]:
    """``(inputs, targets)`` of a collated ``(inputs, targets)`` batch."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise EdgeslimError(
            f"expected (inputs, targets) batches, got a {type(batch).__name__}"
            + (f" of {len(batch)} items" if isinstance(batch, (tuple, list)) else "")
        )
    return batch[0], batch[1]


def call_model(model: nn.Module, inputs: Inputs) -> Any:
    """``model(**inputs)`` for a dict of tensors, else ``model(inputs)``."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(inputs)


def batch_len(obj: Any) -> int:
    """Number of samples in a batch's inputs or targets (first dim of the first tensor)."""
    if torch.is_tensor(obj):
        return int(obj.shape[0]) if obj.dim() else 1
    if isinstance(obj, Mapping):
        return batch_len(next(iter(obj.values())))
    if isinstance(obj, (tuple, list)):
        return len(obj)
    raise EdgeslimError(f"cannot count the samples of a {type(obj).__name__}")


def describe(inputs: Inputs) -> str:
    """Shapes of ``inputs`` for error messages: ``(8, 3, 32, 32)`` or ``input_ids (8, 128)``."""
    if torch.is_tensor(inputs):
        return str(tuple(inputs.shape))
    if isinstance(inputs, Mapping):
        return ", ".join(f"{k} {describe(v)}" for k, v in inputs.items())
    return type(inputs).__name__


def main_output(raw: Any) -> torch.Tensor:
    """The tensor a task scores from a model's raw output.

    Plain tensors pass through; a transformers output (``.logits``) or a dict with
    ``"logits"`` / ``"out"`` (torchvision segmentation) gives that entry.
    """
    if torch.is_tensor(raw):
        return raw
    if hasattr(raw, "logits") and torch.is_tensor(raw.logits):
        return raw.logits
    if isinstance(raw, Mapping):
        for key in ("logits", "out"):
            if key in raw and torch.is_tensor(raw[key]):
                return raw[key]
    raise EdgeslimError(
        f"model returned a {type(raw).__name__}; expected a tensor of logits "
        "(or an object with .logits)"
    )
