"""Accuracy against average latency per sample for several early-exit thresholds.

Every test sample is classified one at a time (batch 1) by the early-exit runner
at each threshold and by the full model as one ONNX graph (the baseline), and
each call is timed on its own with ``perf_counter``: the speed-up is measured
per sample, never computed from layer counts. The calls are interleaved (per
sample, every configuration in a rotating order) so that a change of machine
load hits every configuration alike; a sample's latency is the median of
``repeats`` passes, and the reported latency is the mean over samples.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from edgeslim.export.early_exit import EarlyExitRunner
from edgeslim.export.ort import ort_run

BASELINE = "full model, one ONNX graph"
PLOT_TITLE = "early exit: accuracy vs mean latency per sample (ORT)"


def exit_sweep(
    runner: EarlyExitRunner,
    full: Callable[[np.ndarray], np.ndarray],
    tokens: np.ndarray,
    labels: np.ndarray,
    thresholds: Sequence[float],
    *,
    repeats: int = 3,
    warmup: int = 20,
) -> dict:
    """Accuracy, mean latency (ms) per sample and mean layers run, per threshold.

    Args:
        runner: the segmented model.
        full: the baseline, ``(1, length) int64 -> (1, C) logits`` (e.g. an ORT session
            of the whole model, see :func:`ort_callable`).
        tokens, labels: the test set, ``(N, length)`` and ``(N,)``.
        thresholds: exit thresholds in [0, 1].
        repeats: timed passes over the test set; a sample's time is their median.

    Example:
        >>> # exit_sweep(EarlyExitRunner(d, threads=1), ort_callable(sess), x, y, [0, 0.2])
    """
    configs: list[Callable[[np.ndarray], tuple[np.ndarray, int]]] = [
        lambda x: (full(x), runner.layers - 1)
    ]
    for t in thresholds:
        configs.append(lambda x, t=t: _exit_call(runner, x, t))
    n, k = len(labels), len(configs)
    x = np.ascontiguousarray(tokens, dtype=np.int64)
    for i in range(min(warmup, n)):
        for c in configs:
            c(x[i : i + 1])
    times = np.zeros((repeats, k, n))
    preds = np.zeros((k, n), np.int64)
    exits = np.zeros((k, n), np.int64)
    for r in range(repeats):
        for i in range(n):
            sample = x[i : i + 1]
            for j in ((i + r + s) % k for s in range(k)):  # rotate the order per sample
                t0 = time.perf_counter()
                logits, ex = configs[j](sample)
                times[r, j, i] = time.perf_counter() - t0
                preds[j, i], exits[j, i] = int(np.argmax(logits[0])), ex
    per_sample = np.median(times, axis=0) * 1e3  # (k, n) ms
    rows = []
    for j in range(k):
        rows.append(
            {
                "name": BASELINE if j == 0 else f"threshold {thresholds[j - 1]:g}",
                "threshold": None if j == 0 else float(thresholds[j - 1]),
                "accuracy": float((preds[j] == labels).mean()),
                "latency_ms": float(per_sample[j].mean()),
                "latency_p50_ms": float(statistics.median(per_sample[j])),
                "layers_run": float((exits[j] + 1).mean()),
                "exit_counts": np.bincount(exits[j], minlength=runner.layers).tolist(),
            }
        )
    base = rows[0]
    for row in rows:
        row["speedup"] = base["latency_ms"] / row["latency_ms"]
        row["accuracy_drop_points"] = 100 * (base["accuracy"] - row["accuracy"])
    return {"samples": n, "repeats": repeats, "layers": runner.layers, "rows": rows}


def _exit_call(runner: EarlyExitRunner, x: np.ndarray, t: float) -> tuple[np.ndarray, int]:
    out = runner(x, t)
    return out.logits, int(out.exits[0])


def ort_callable(session) -> Callable[[np.ndarray], np.ndarray]:
    """A single-input ORT session as ``x -> first output``."""
    return lambda x: ort_run(session, x)


def best_within(sweep: dict, max_drop_points: float = 1.0) -> dict | None:
    """The fastest threshold at most ``max_drop_points`` below the baseline's accuracy."""
    ok = [r for r in sweep["rows"][1:] if r["accuracy_drop_points"] <= max_drop_points + 1e-9]
    return max(ok, key=lambda r: r["speedup"], default=None)


def exit_stages(sweep: dict) -> list[dict]:
    """The sweep as report ``stages`` (latency at batch 1) for the accuracy/latency plot."""
    return [
        {
            "name": r["name"]
            + ("" if r["threshold"] is None else f", {r['layers_run']:.2f} layers"),
            "accuracy": r["accuracy"],
            "latency_ms": {"1": r["latency_ms"]},
            "metric": "accuracy",
        }
        for r in sweep["rows"]
    ]


def exit_table(sweep: dict) -> str:
    """A markdown table of the sweep.

    "layers ratio" (all layers / mean layers run) is what the speed-up would be if every
    layer cost the same and segmenting were free: context for the measured speed-up, which
    is the number that counts.
    """
    lines = [
        "| configuration | accuracy | vs full (points) | mean ms / sample | median ms | speed-up "
        "| mean layers run | layers ratio | samples leaving at layer 1..L |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sweep["rows"]:
        lines.append(
            f"| {r['name']} | {100 * r['accuracy']:.2f}% | {-r['accuracy_drop_points']:+.2f} | "
            f"{r['latency_ms']:.3f} | {r['latency_p50_ms']:.3f} | {r['speedup']:.2f}x | "
            f"{r['layers_run']:.2f} | {sweep['layers'] / r['layers_run']:.2f}x | "
            f"{' / '.join(map(str, r['exit_counts']))} |"
        )
    return "\n".join(lines)
