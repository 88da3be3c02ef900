"""Latency measurement with warm-up, median and p90, and interleaved A/B timing.

On a shared, noisy machine two numbers taken minutes apart are not comparable.
:func:`measure` therefore times every target inside one loop, alternating the
order each round, so a burst of noise hits A and B alike and the ratio holds.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode, torch_threads
from edgeslim.export.ort import onnx_input_spec, ort_session
from edgeslim.export.runtimes import get_runtime
from edgeslim.models.inputs import InputSpec

RunOnce = Callable[[], object]


@dataclass(frozen=True)
class Target:
    """Something to time: ``prepare(batch, threads)`` returns a zero-argument run-once function."""

    label: str
    runtime: str
    prepare: Callable[[int, int | None], RunOnce]
    module: nn.Module | None = None  # put in eval mode while timing, restored after


@dataclass
class BenchReport:
    results: list[dict] = field(default_factory=list)  # {model, runtime, batch, median_ms, p90_ms}
    ratio: dict[str, float] = field(default_factory=dict)  # batch -> A median / B median

    def median(self, label: str, batch: int) -> float:
        for r in self.results:
            if r["model"] == label and r["batch"] == batch:
                return r["median_ms"]
        raise KeyError((label, batch))

    def to_dict(self) -> dict:
        out: dict = {"results": self.results}
        if self.ratio:
            out["ratio"] = self.ratio
        return out


def torch_target(model: nn.Module, spec: InputSpec, label: str) -> Target:
    """Eager PyTorch inference (``inference_mode``, eval mode)."""

    def prepare(batch: int, threads: int | None) -> RunOnce:
        x = spec.example(batch=batch)

        def run() -> object:
            with torch.inference_mode():
                return model(x)

        return run

    return Target(label, "torch", prepare, module=model)


def onnx_target(
    path: str | Path,
    label: str,
    spec: InputSpec | None = None,
    *,
    runtime: str = "onnxruntime",
    precision: str = "fp32",
) -> Target:
    """Inference of the ONNX file at ``path`` on ``runtime`` (a registry name) in ``precision``."""
    shape, dtype = onnx_input_spec(path)
    if spec is None:
        dims = tuple(d if isinstance(d, int) else 1 for d in shape)
        spec = InputSpec(dims, dtype, vocab_size=2 if dtype != "float32" else None)

    def prepare(batch: int, threads: int | None) -> RunOnce:
        if isinstance(shape[0], int) and shape[0] != batch:
            raise EdgeslimError(f"{path} has a fixed batch of {shape[0]}; cannot run batch {batch}")
        if runtime == "onnxruntime":  # the raw session: no wrapper in the timed call
            sess = ort_session(path, threads)
            feed = {sess.get_inputs()[0].name: spec.example(batch=batch).numpy()}
            return lambda: sess.run(None, feed)
        rt = get_runtime(runtime)
        loaded = rt.load(path, threads=threads, precision=precision, batch=batch)
        xs = [spec.example(batch=batch).numpy()]
        return lambda: loaded.run(xs)

    return Target(label, runtime, prepare)


def module_target(
    model: nn.Module, spec: InputSpec, label: str, *, runtime: str, precision: str = "fp32"
) -> Target:
    """A torch-module runtime (``torch``, ``torch_compile``) in ``precision``."""
    if runtime == "torch" and precision == "fp32":
        return torch_target(model, spec, label)

    def prepare(batch: int, threads: int | None) -> RunOnce:
        loaded = get_runtime(runtime).load(model, threads=threads, precision=precision)
        xs = [spec.example(batch=batch).numpy()]
        return lambda: loaded.run(xs)

    return Target(label, runtime, prepare)


def measure(
    targets: list[Target],
    batches: tuple[int, ...] = (1, 8),
    *,
    runs: int = 30,
    warmup: int = 5,
    threads: int | None = None,
    progress: bool = True,
) -> BenchReport:
    """Time each target at each batch size, interleaved; ratio = first / second target.

    Example:
        >>> from edgeslim.models import build_zoo_model
        >>> m = build_zoo_model("resnet20")
        >>> rep = measure([torch_target(m, InputSpec((1, 3, 32, 32)), "r20")], (1,), runs=3)
        >>> rep.results[0]["median_ms"] > 0
        True
    """
    if runs < 1:
        raise EdgeslimError("--runs must be at least 1")
    report = BenchReport()
    with torch_threads(threads), contextlib.ExitStack() as stack:
        for t in targets:
            if t.module is not None:
                stack.enter_context(eval_mode(t.module))
        for batch in batches:
            fns = [t.prepare(batch, threads) for t in targets]
            for fn in fns:
                for _ in range(warmup):
                    fn()
            times: list[list[float]] = [[] for _ in fns]
            order = list(range(len(fns)))
            it = tqdm(range(runs), desc=f"bench batch {batch}", leave=False, disable=not progress)
            for i in it:
                for k in order if i % 2 == 0 else order[::-1]:
                    t0 = time.perf_counter()
                    fns[k]()
                    times[k].append((time.perf_counter() - t0) * 1e3)
            for t, ts in zip(targets, times, strict=True):
                report.results.append(
                    {
                        "model": t.label,
                        "runtime": t.runtime,
                        "batch": batch,
                        "median_ms": float(np.median(ts)),
                        "p90_ms": float(np.percentile(ts, 90)),
                        "runs": runs,
                    }
                )
            if len(targets) == 2:
                report.ratio[str(batch)] = float(np.median(times[0]) / np.median(times[1]))
    return report
