"""Model size in bytes, as it would actually sit on disk."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import safetensors.torch
from torch import nn


def safetensors_bytes(model: nn.Module) -> int:
    """Bytes of the model's weights saved as safetensors (shared tensors once)."""
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "w.safetensors"
        safetensors.torch.save_model(model, str(f))
        return f.stat().st_size


def onnx_bytes(path: str | os.PathLike) -> int:
    """Bytes of an ONNX model, including an external ``.data`` file if one exists."""
    path = Path(path)
    total = path.stat().st_size
    for extra in (path.with_name(path.name + ".data"), path.with_suffix(".data")):
        if extra.is_file():
            total += extra.stat().st_size
    return total
