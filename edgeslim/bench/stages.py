"""Stage records: the ``stages`` schema every report shares.

A stage is one model state in a compression run (the input, after pruning, after
quantization, ...). Its record is
``{name, runtime, precision, params, macs, size_bytes, sparsity, latency_ms: {"1": ms, "8": ms},
latency_p90_ms: {...}, accuracy, metric}``; ``accuracy`` is the value (a fraction)
of the data's task's primary metric, null without data, and ``metric`` its label
(``"top-1"``, ``"mIoU"``; see :mod:`edgeslim.tasks`), which reports use as header.
"""

from __future__ import annotations

from edgeslim.bench.latency import BenchReport


def stage_record(
    name: str,
    label: str,
    report: BenchReport,
    *,
    runtime: str,
    precision: str = "fp32",
    params: int,
    macs: int,
    size_bytes: int,
    sparsity: float = 0.0,
    accuracy: float | None = None,
    metric: str = "top-1",
) -> dict:
    """Assemble one stage record; latencies come from ``report`` rows labelled ``label``."""
    lat, p90 = {}, {}
    for r in report.results:
        if r["model"] == label:
            lat[str(r["batch"])] = r["median_ms"]
            p90[str(r["batch"])] = r["p90_ms"]
    return {
        "name": name,
        "runtime": runtime,
        "precision": precision,
        "params": params,
        "macs": macs,
        "size_bytes": size_bytes,
        "sparsity": sparsity,
        "latency_ms": lat,
        "latency_p90_ms": p90,
        "accuracy": accuracy,
        "metric": metric,
    }


def metric_label(stages: list[dict]) -> str:
    """The label of the metric in ``accuracy`` (``"top-1"`` for records that predate it)."""
    return next((s["metric"] for s in stages if s.get("metric")), "top-1")


def format_stages(stages: list[dict]) -> str:
    """A short table of what each stage bought, relative to the first."""
    base = stages[0]
    label = metric_label(stages)
    head = (
        f"{'stage':<28} {label[:7]:>7} {'params':>9} {'MMACs':>8} {'size KB':>9} "
        f"{'b1 ms':>8} {'b8 ms':>8} {'b8 speedup':>10}"
    )
    lines = [head]
    for s in stages:
        acc = f"{100 * s['accuracy']:.2f}" if s["accuracy"] is not None else "-"
        b1, b8 = s["latency_ms"].get("1"), s["latency_ms"].get("8")
        sp = base["latency_ms"].get("8", 0) / b8 if b8 else float("nan")
        lines.append(
            f"{s['name'][:28]:<28} {acc:>7} {s['params']:>9,} {s['macs'] / 1e6:>8.1f} "
            f"{s['size_bytes'] / 1024:>9.1f} {b1 or float('nan'):>8.3f} {b8 or float('nan'):>8.3f} "
            f"{sp:>9.2f}x"
        )
    return "\n".join(lines)
