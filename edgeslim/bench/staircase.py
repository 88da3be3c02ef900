"""Latency staircase: how one layer shape's runtime latency steps with its channel count.

A runtime's convolution kernels work in blocks of channels (ONNX Runtime's NCHWc
layout blocks by 8 or 16 on AVX2 / AVX-512), so latency is a staircase in the width,
not a line: a width between two steps pays for the next step and may lose the
blocked kernel entirely. :func:`measure_staircase` times a tiny network of one
layer shape (``kind``: ``conv3x3``, ``conv1x1``, ``dw3x3``, ``linear``, ...) at
every width in a range, interleaved round-robin so that load hits every width
alike, and keeps the lower quartile per width: on a loaded machine a preempted run of a
sub-millisecond kernel takes a scheduler quantum (3 ms), which drags even a median of
a few runs off the kernel's own cost. :func:`staircase` does this once per
(layer shape, runtime, CPU model, thread count) and caches the result as JSON under
``cache_dir("staircase")``. The choice of an alignment from it is the pruning
package's job (:mod:`edgeslim.prune.align`).

Graphs are built directly with ``onnx.helper`` (no PyTorch export): a width costs a
session, not an export, so a staircase of 65 widths takes about a second.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.cpu import cpu_isa
from edgeslim.core.cpu import cpu_model as _cpu_model
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.paths import cache_dir

DEPTH = 3  # layers stacked in the timed network
SPATIAL = 14  # H = W of convolution inputs (small: cheap to time)
ROWS = 8  # rows of the Linear input
WIDTHS = tuple(range(32, 97))  # every width from 32 to 96: steps of up to 32 are visible
_KIND = re.compile(r"^(conv|dw)(\d+)x(\d+)$|^linear$")


@dataclass(frozen=True)
class Staircase:
    """Median latency (ms) of a ``kind`` network at each width, and where it was measured."""

    kind: str
    runtime: str  # e.g. "onnxruntime 1.32.0 CPUExecutionProvider fp32"
    cpu: str
    threads: int
    widths: tuple[int, ...]
    ms: tuple[float, ...]  # lower quartile of the timed runs at each width
    macs: tuple[int, ...]  # MACs of the timed network at each width
    runs: int = 0
    source: str = "measured"  # "measured", "cache" or "seeded"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str | None = None) -> Staircase:
        d = dict(d)
        for k in ("widths", "ms", "macs"):
            d[k] = tuple(d[k])
        if source is not None:
            d["source"] = source
        return cls(**d)


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name and vector extensions (latency is cached per both)."""
    return f"{_cpu_model()} ({cpu_isa()})"


def runtime_name() -> str:
    """The deploy runtime the staircase is measured on (FP32 ONNX Runtime, CPU)."""
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__} CPUExecutionProvider fp32"


def effective_threads(threads: int | None) -> int:
    return int(threads or os.cpu_count() or 1)


def check_kind(kind: str) -> str:
    if not _KIND.match(kind):
        raise EdgeslimError(f"unknown layer shape {kind!r}: expected convKxK, dwKxK or linear")
    return kind


def network_macs(kind: str, width: int) -> int:
    """MACs of the timed ``kind`` network at ``width`` channels."""
    m = _KIND.match(check_kind(kind))
    if kind == "linear":
        return DEPTH * ROWS * width * width
    kh, kw = int(m.group(2)), int(m.group(3))
    per_out = kh * kw * (1 if m.group(1) == "dw" else width)
    return DEPTH * SPATIAL * SPATIAL * width * per_out


def build_network(kind: str, width: int, path: Path) -> Path:
    """Write the ``kind`` network at ``width`` channels as an ONNX file (opset 18)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = _KIND.match(check_kind(kind))
    rng = np.random.default_rng(width)
    nodes, inits = [], []
    if kind == "linear":
        shape = [ROWS, width]
    else:
        shape = [1, width, SPATIAL, SPATIAL]
    prev = "x"
    for i in range(DEPTH):
        w, b = f"w{i}", f"b{i}"
        if kind == "linear":
            wt = rng.standard_normal((width, width)).astype(np.float32) * 0.05
            nodes.append(helper.make_node("MatMul", [prev, w], [f"m{i}"]))
            nodes.append(helper.make_node("Add", [f"m{i}", b], [f"a{i}"]))
            pre = f"a{i}"
        else:
            kh, kw = int(m.group(2)), int(m.group(3))
            dw = m.group(1) == "dw"
            wt = rng.standard_normal((width, 1 if dw else width, kh, kw)).astype(np.float32) * 0.05
            pads = [kh // 2, kw // 2, (kh - 1) // 2, (kw - 1) // 2]
            nodes.append(
                helper.make_node(
                    "Conv", [prev, w, b], [f"c{i}"], pads=pads, group=width if dw else 1
                )
            )
            pre = f"c{i}"
        inits += [
            numpy_helper.from_array(wt, w),
            numpy_helper.from_array(np.zeros(width, np.float32), b),
        ]
        prev = f"y{i}"
        nodes.append(helper.make_node("Relu", [pre], [prev]))
    graph = helper.make_graph(
        nodes,
        f"{kind}_{width}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def measure_staircase(
    kind: str,
    threads: int | None = None,
    widths: tuple[int, ...] = WIDTHS,
    runs: int = 15,
    warmup: int = 2,
) -> Staircase:
    """Time the ``kind`` network at every width, round-robin; lower quartile of ``runs``.

    Example:
        >>> s = measure_staircase("conv1x1", threads=1, widths=(8, 16), runs=2)
        >>> s.widths, len(s.ms)
        ((8, 16), 2)
    """
    from edgeslim.export.ort import ort_session

    if runs < 1 or not widths:
        raise EdgeslimError("a staircase needs at least one width and one run")
    n = effective_threads(threads)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        fns = []
        for w in widths:
            sess = ort_session(build_network(kind, w, Path(d) / f"{w}.onnx"), n)
            shape = [ROWS, w] if kind == "linear" else [1, w, SPATIAL, SPATIAL]
            feed = {"x": rng.standard_normal(shape).astype(np.float32)}
            fns.append(functools.partial(sess.run, None, feed))
        for fn in fns:
            for _ in range(warmup):
                fn()
        times: list[list[float]] = [[] for _ in fns]
        order = list(range(len(fns)))
        for _ in range(runs):
            rng.shuffle(order)  # a burst of load lands on random widths, not on a range
            for k in order:
                t0 = time.perf_counter()
                fns[k]()
                times[k].append((time.perf_counter() - t0) * 1e3)
    return Staircase(
        kind,
        runtime_name(),
        cpu_model(),
        n,
        tuple(widths),
        tuple(float(np.percentile(t, 25)) for t in times),
        tuple(network_macs(kind, w) for w in widths),
        runs,
    )


def cache_path(kind: str, threads: int | None = None, widths: tuple[int, ...] = WIDTHS) -> Path:
    """Where the staircase of ``kind`` for this runtime, CPU and thread count is cached."""
    key = json.dumps(
        [check_kind(kind), runtime_name(), cpu_model(), effective_threads(threads), widths]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir("staircase") / f"{kind}-{effective_threads(threads)}t-{digest}.json"


def save_staircase(s: Staircase, path: Path | None = None) -> Path:
    """Write ``s`` to its cache file (atomically); pre-seeds the cache for :func:`staircase`.

    Example:
        >>> # save_staircase(Staircase("conv3x3", runtime_name(), cpu_model(), 2, ws, ms, macs))
    """
    path = path or cache_path(s.kind, s.threads, s.widths)
    write_text_atomic(path, json.dumps(s.to_dict(), indent=1) + "\n")
    return path


def load_staircase(
    kind: str, threads: int | None = None, widths: tuple[int, ...] = WIDTHS
) -> Staircase | None:
    """The cached staircase, or None (missing or unreadable files are measured again)."""
    path = cache_path(kind, threads, widths)
    try:
        d = json.loads(path.read_text())
        s = Staircase.from_dict(d)
    except (OSError, ValueError, TypeError):
        return None
    src = "seeded" if s.source == "seeded" else "cache"
    return Staircase.from_dict(d, src)


def staircase(
    kind: str, threads: int | None = None, widths: tuple[int, ...] = WIDTHS, runs: int = 15
) -> Staircase:
    """The staircase of ``kind`` on this runtime, CPU and thread count: cached, else measured."""
    hit = load_staircase(kind, threads, widths)
    if hit is not None:
        return hit
    s = measure_staircase(kind, threads, widths, runs)
    save_staircase(s)
    return s
