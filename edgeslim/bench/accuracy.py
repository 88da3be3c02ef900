"""A task's metrics of a PyTorch model or an ONNX file on a dataset split.

The task (:mod:`edgeslim.tasks`) says how batches split into inputs and targets,
what the outputs must look like and which metrics to accumulate; results hold
every metric by name, e.g. ``{"top1": 0.93, "n": 500, "primary": "top1"}`` for
classification or ``{"miou": 0.71, "pixel_acc": 0.95, ...}`` for segmentation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode
from edgeslim.export.ort import ort_session
from edgeslim.tasks import Task, call_model, get_task
from edgeslim.tasks.batch import describe

Predict = Callable[[Any], Any]  # batch of inputs -> raw model outputs


def score(
    predict: Predict,
    loader: DataLoader,
    task: str | Task = "classification",
    desc: str = "evaluate",
) -> dict:
    """Every metric of ``task`` for ``predict`` over ``loader``, plus ``n`` and ``primary``."""
    task = get_task(task)
    metrics = task.new_metrics()
    n = 0
    for batch in tqdm(loader, desc=desc, leave=False, disable=len(loader) < 4):
        x, y = task.split(batch)
        try:
            out = task.outputs(predict(x))
        except (RuntimeError, ValueError) as e:  # shape/dtype mismatch between data and model
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise EdgeslimError(f"model rejects inputs of shape {describe(x)}: {msg}") from None
        task.check_output(out, x, None)
        metrics.update(out, y)
        n += int(y.shape[0])
    if n == 0:
        raise EdgeslimError("the evaluation split is empty")
    return {**metrics.compute(), "n": n, "primary": task.primary}


def top1(predict: Predict, loader: DataLoader, desc: str = "evaluate") -> dict:
    """``{"top1": fraction correct, "n": samples, ...}``: :func:`score` for classification."""
    return score(predict, loader, "classification", desc)


def torch_predict(model: nn.Module) -> Predict:
    def predict(x: Any) -> Any:
        with torch.inference_mode():
            return call_model(model, x)

    return predict


def onnx_predict(path: str | Path, threads: int | None = None) -> Predict:
    """Run an ONNX file: a tensor feeds the first input, a dict feeds inputs by name."""
    sess = ort_session(path, threads)
    first = sess.get_inputs()[0].name

    def predict(x: Any) -> Any:
        feed = (
            {k: v.numpy() for k, v in x.items()} if isinstance(x, Mapping) else {first: x.numpy()}
        )
        return _as_output(sess.run(None, feed))

    return predict


def _as_output(outs: list) -> Any:
    """One graph output as a tensor; several (a detector's heads) as a tuple, in graph order."""
    tensors = tuple(torch.from_numpy(np.asarray(o)) for o in outs)
    return tensors[0] if len(tensors) == 1 else tensors


def runtime_predict(
    runtime: str, model: Any, precision: str = "fp32", threads: int | None = None
) -> Predict:
    """Run ``model`` (an ONNX path, or a module for torch runtimes) on a registered runtime.

    Accuracy is then measured on exactly what is timed: the same runtime and precision.
    """
    from edgeslim.export.runtimes import get_runtime

    rt = get_runtime(runtime)
    sess = rt.load(model, threads=threads, precision=precision)

    def predict(x: Any) -> Any:
        xs = [v.numpy() for v in x.values()] if isinstance(x, Mapping) else [x.numpy()]
        return _as_output(list(sess.run(xs)))

    return predict


def evaluate_model(
    model: nn.Module, loader: DataLoader, task: str | Task = "classification"
) -> dict:
    """The task's metrics of ``model`` in eval mode (each submodule's mode is restored).

    Example:
        >>> # evaluate_model(model, loader)["top1"]
        >>> # evaluate_model(segnet, loader, "segmentation")["miou"]
    """
    with eval_mode(model):
        return score(torch_predict(model), loader, task)


def evaluate_onnx(
    path: str | Path,
    loader: DataLoader,
    task: str | Task = "classification",
    *,
    runtime: str = "onnxruntime",
    precision: str = "fp32",
) -> dict:
    """The task's metrics of an ONNX model on ``runtime`` (ONNX Runtime by default)."""
    if runtime == "onnxruntime":
        return score(onnx_predict(path), loader, task, desc="evaluate onnx")
    pred = runtime_predict(runtime, path, precision)
    return score(pred, loader, task, desc=f"evaluate {runtime} {precision}")


def compare(
    a: Predict,
    b: Predict,
    loader: DataLoader,
    task: str | Task = "classification",
    *,
    lossy: bool = False,
) -> dict:
    """Parity of two predictors over ``loader`` by the task's measure (bounded memory).

    ``lossy=False`` demands elementwise agreement within the task's ``atol`` (an export,
    a fused or pruned twin); ``lossy=True`` demands the task's agreement (top-1 or
    per-pixel agreement) of at least ``min_agreement`` (INT8, fp16). Returns
    ``{measure: fraction, "max_abs_diff": x, "n": positions, "ok": bool}``.

    Example:
        >>> # compare(torch_predict(model), onnx_predict("m.onnx"), loader)["ok"]
    """
    task = get_task(task)
    meter = task.parity.meter(lossy)
    for batch in loader:
        x, _ = task.split(batch)
        meter.update(task.outputs(a(x)), task.outputs(b(x)))
    return meter.result()


def primary_value(result: dict) -> float:
    """The headline metric of a :func:`score` result."""
    return result[result["primary"]]
