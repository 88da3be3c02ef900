"""Factorize a layer only where its factorized form is measured faster on ONNX Runtime.

Fewer MACs is not less time: a rank-r 1x1 -> kxk -> 1x1 chain launches three kernels
where the dense layer launched one, and a runtime's blocked kernels (see
:mod:`edgeslim.bench.staircase`) may lose their fast path at an odd rank. So with
``edgeslim decompose --measured`` every candidate layer is exported twice as a tiny
ONNX model, once dense and once factorized, at the input shape it really sees
(captured with forward hooks on the model's example input), both are timed
interleaved on FP32 ONNX Runtime (:func:`edgeslim.bench.latency.measure`), and the
factorization is kept only where it is faster by ``margin`` (5 %: below that the
difference is within what a loaded machine moves between runs).

Timings are cached per (dense layer, factorized structure, input shape, runtime,
CPU, threads) under ``cache_dir("lowrank_latency")``: a layer shape repeated in a
network (ResNet's blocks) is timed once, and a second run costs no timing at all.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from edgeslim.bench.latency import measure, onnx_target
from edgeslim.bench.staircase import cpu_model, effective_threads, runtime_name
from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import Applied, Record
from edgeslim.core.modes import eval_mode, quiet_exporter
from edgeslim.core.paths import cache_dir
from edgeslim.core.select import swap_module_

Shape = tuple[int, ...]
# time_pair(dense, factorized, input_shape) -> (dense ms, factorized ms)
TimePair = Callable[[nn.Module, nn.Module, Shape], tuple[float, float]]


@dataclass(frozen=True)
class MeasuredRule:
    """Keep a factorization only where it is at least ``margin`` faster than the dense layer.

    Attributes:
        margin: required saving, a fraction of the dense layer's time (0.05: 5 % faster).
        runs: timed runs of each pair (interleaved; the median is kept).
        threads: ONNX Runtime intra-op threads (None: every core).
        cache: reuse timings cached for the same layer, shape, runtime, CPU and threads.
        time_pair: replaces the ONNX Runtime timing (tests inject fixed timings).
    """

    margin: float = 0.05
    runs: int = 20
    threads: int | None = None
    cache: bool = True
    time_pair: TimePair | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.margin < 1:
            raise EdgeslimError(f"margin must be in [0, 1), got {self.margin}")
        if self.runs < 1:
            raise EdgeslimError(f"runs must be at least 1, got {self.runs}")


def input_shapes(model: nn.Module, example: torch.Tensor, names: list[str]) -> dict[str, Shape]:
    """The shape of the first input of each layer in ``names`` on ``example`` (eval mode).

    Example:
        >>> m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3))
        >>> input_shapes(m, torch.zeros(1, 3, 16, 16), ["1"])
        {'1': (1, 8, 14, 14)}
    """
    shapes: dict[str, Shape] = {}
    handles = []
    try:
        for name in names:

            def hook(mod, args, name=name):
                if name not in shapes and args and isinstance(args[0], torch.Tensor):
                    shapes[name] = tuple(args[0].shape)

            handles.append(model.get_submodule(name).register_forward_pre_hook(hook))
        with eval_mode(model), torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in names if n not in shapes]
    if missing:
        raise EdgeslimError(f"layers {missing} did not run on the example input: cannot time them")
    return shapes


def _export_fixed(module: nn.Module, shape: Shape, path: Path) -> Path:
    """``module`` as an ONNX file with a fixed input ``shape``.

    The TorchScript exporter: a tiny single-layer graph needs no ``torch.export``,
    and it exports in a tenth of the time. Fixed shapes: the timing is of this shape.
    """
    x = torch.randn(shape)
    with eval_mode(module), torch.no_grad(), quiet_exporter():
        torch.onnx.export(
            module, (x,), str(path), dynamo=False, opset_version=18, input_names=["input"]
        )
    return path


def ort_time_pair(
    dense: nn.Module, factorized: nn.Module, shape: Shape, *, runs: int, threads: int | None
) -> tuple[float, float]:
    """Median ms of ``dense`` and ``factorized`` on FP32 ONNX Runtime, timed interleaved."""
    # CPU float32 copies: the deploy runtime is FP32 ORT wherever the model lives now
    dense, factorized = (copy.deepcopy(m).to("cpu", torch.float32) for m in (dense, factorized))
    with tempfile.TemporaryDirectory() as d:
        a = _export_fixed(dense, shape, Path(d) / "dense.onnx")
        b = _export_fixed(factorized, shape, Path(d) / "factorized.onnx")
        rep = measure(
            [onnx_target(a, "dense"), onnx_target(b, "factorized")],
            (shape[0],),
            runs=runs,
            warmup=3,
            threads=threads,
            progress=False,
        )
    return rep.median("dense", shape[0]), rep.median("factorized", shape[0])


def _structure(module: nn.Module) -> list:
    """What the latency of ``module`` depends on: each leaf's type and hyperparameters."""
    out = []
    for name, m in module.named_modules():
        if next(m.children(), None) is not None:
            continue
        hyper = {k: v for k, v in vars(m).items() if not k.startswith("_") and k != "training"}
        shapes = {k: list(p.shape) for k, p in m.named_parameters(recurse=False)}
        out.append([name, type(m).__name__, repr(sorted(hyper.items())), shapes])
    return out


def cache_key(dense: nn.Module, factorized: nn.Module, shape: Shape, rule: MeasuredRule) -> str:
    key = json.dumps(
        [
            _structure(dense),
            _structure(factorized),
            list(shape),
            runtime_name(),
            cpu_model(),
            effective_threads(rule.threads),
            rule.runs,
        ]
    )
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def timed_pair(
    dense: nn.Module, factorized: nn.Module, shape: Shape, rule: MeasuredRule
) -> tuple[float, float, str]:
    """(dense ms, factorized ms, source): from ``rule.time_pair``, the cache or ORT."""
    if rule.time_pair is not None:
        d, f = rule.time_pair(dense, factorized, shape)
        return float(d), float(f), "injected"
    path = cache_dir("lowrank_latency") / f"{cache_key(dense, factorized, shape, rule)}.json"
    if rule.cache:
        try:
            hit = json.loads(path.read_text())
            return float(hit["dense_ms"]), float(hit["factorized_ms"]), "cache"
        except (OSError, ValueError, KeyError, TypeError):
            pass
    d, f = ort_time_pair(dense, factorized, shape, runs=rule.runs, threads=rule.threads)
    if rule.cache:
        write_text_atomic(path, json.dumps({"dense_ms": d, "factorized_ms": f}) + "\n")
    return d, f, "measured"


def keep_faster(
    dense_model: nn.Module,
    applied: Applied,
    example: torch.Tensor,
    rule: MeasuredRule,
) -> Applied:
    """``applied`` with each factorized layer put back dense unless measured faster.

    ``applied`` is the factorization of ``dense_model`` (``apply(dense_model, config)``);
    its model is changed in place. The returned record lists only the layers kept
    (so a saved model replays exactly those); its details gain ``measured``: per
    layer, the input shape, dense and factorized ms, the speedup and whether it was
    kept; a layer put back is also in ``skipped`` with its timings as the reason.

    Example:
        >>> from edgeslim.core.methods import apply
        >>> from edgeslim.lowrank import RankRule, SVDConfig
        >>> m = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
        >>> slow = MeasuredRule(time_pair=lambda d, f, s: (1.0, 2.0))  # factorized is slower
        >>> out = keep_faster(m, apply(m, SVDConfig(RankRule(rank=4))), torch.zeros(1, 64), slow)
        >>> list(out.record.layers), out.record.details["measured"]["layers"]["0"]["kept"]
        ([], False)
    """
    model, rec = applied.model, applied.record
    names = list(rec.details.get("layers", {}))
    shapes = input_shapes(dense_model, example, names) if names else {}
    timings: dict[str, dict] = {}
    kept: dict[str, dict] = {}
    skipped = dict(rec.details.get("skipped", {}))
    for name in names:
        dense = dense_model.get_submodule(name)
        d_ms, f_ms, source = timed_pair(dense, model.get_submodule(name), shapes[name], rule)
        keep = f_ms <= (1 - rule.margin) * d_ms
        timings[name] = {
            "input_shape": list(shapes[name]),
            "dense_ms": d_ms,
            "factorized_ms": f_ms,
            "speedup": d_ms / f_ms if f_ms > 0 else float("inf"),
            "kept": keep,
            "source": source,
        }
        if keep:
            kept[name] = rec.details["layers"][name]
        else:
            swap_module_(model, name, copy.deepcopy(dense))
            skipped[name] = (
                f"measured {f_ms:.4f} ms factorized vs {d_ms:.4f} ms dense: "
                f"not {rule.margin:.0%} faster"
            )
    details = {
        **rec.details,
        "layers": kept,
        "skipped": skipped,
        "params_before": sum(d["params_before"] for d in kept.values()),
        "params_after": sum(d["params_after"] for d in kept.values()),
        "measured": {
            "runtime": runtime_name(),
            "cpu": cpu_model(),
            "threads": effective_threads(rule.threads),
            "margin": rule.margin,
            "runs": rule.runs,
            "layers": timings,
        },
    }
    layers = {n: c for n, c in rec.layers.items() if n in kept}
    return Applied(model, Record(rec.method, rec.config, layers, details, rec.before))
