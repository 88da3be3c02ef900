"""Top-1 accuracy of a PyTorch model or an ONNX file on a dataset split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode
from edgeslim.export.ort import ort_run, ort_session

Predict = Callable[[torch.Tensor], torch.Tensor]  # batch of inputs -> logits


def top1(predict: Predict, loader: DataLoader, desc: str = "evaluate") -> dict:
    """``{"top1": fraction correct, "n": samples}`` of ``predict`` over ``loader``."""
    correct = n = 0
    for x, y in tqdm(loader, desc=desc, leave=False, disable=len(loader) < 4):
        try:
            logits = predict(x)
        except (RuntimeError, ValueError) as e:  # shape/dtype mismatch between data and model
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise EdgeslimError(f"model rejects inputs of shape {tuple(x.shape)}: {msg}") from None
        if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
            raise EdgeslimError(f"model output shape {tuple(logits.shape)} is not (batch, classes)")
        correct += int((logits.argmax(1) == y).sum())
        n += int(y.numel())
    if n == 0:
        raise EdgeslimError("the evaluation split is empty")
    return {"top1": correct / n, "n": n}


def torch_predict(model: nn.Module) -> Predict:
    def predict(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return predict


def onnx_predict(path: str | Path, threads: int | None = None) -> Predict:
    sess = ort_session(path, threads)
    return lambda x: torch.from_numpy(np.asarray(ort_run(sess, x.numpy())))


def evaluate_model(model: nn.Module, loader: DataLoader) -> dict:
    """Top-1 of ``model`` in eval mode (its previous mode is restored)."""
    with eval_mode(model):
        return top1(torch_predict(model), loader)


def evaluate_onnx(path: str | Path, loader: DataLoader) -> dict:
    """Top-1 of an ONNX model under ONNX Runtime."""
    return top1(onnx_predict(path), loader, desc="evaluate onnx")
