"""Report plots as PNG bytes (matplotlib, headless Agg backend)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def accuracy_vs_latency(stages: list[dict], batch: str = "8") -> bytes | None:
    """One point per stage: latency (ms) at ``batch`` against the task's primary metric."""
    pts = [(s["latency_ms"].get(batch), s["accuracy"], s["name"]) for s in stages]
    pts = [p for p in pts if p[0] is not None and p[1] is not None]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], "o-", color="tab:blue")
    for x, y, name in pts:
        ax.annotate(name, (x, 100 * y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"latency at batch {batch} (ms, log scale)")
    label = next((s["metric"] for s in stages if s.get("metric")), "top-1")
    ax.set_ylabel(f"{label} (%)")
    ax.set_title("accuracy vs latency per stage")
    ax.grid(alpha=0.3)
    return _png(fig)


def channels_kept(layers: list[dict]) -> bytes | None:
    """Bars per layer: original width and width kept."""
    rows = [r for r in layers if r["kept"] is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(max(6.4, 0.18 * len(rows)), 4.2))
    xs = range(len(rows))
    ax.bar(xs, [r["channels"] for r in rows], color="lightgray", label="input")
    ax.bar(xs, [r["kept"] for r in rows], color="tab:green", label="kept")
    ax.set_xticks(list(xs), [r["name"] for r in rows], rotation=90, fontsize=6)
    ax.set_ylabel("output channels")
    ax.set_title("channels kept per layer")
    ax.legend()
    return _png(fig)


def sensitivity(layers: list[dict]) -> bytes | None:
    """Bars per layer: accuracy drop (points) when only that layer is quantized."""
    rows = [r for r in layers if r.get("sensitivity") is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(max(6.4, 0.18 * len(rows)), 4.2))
    ax.bar(range(len(rows)), [r["sensitivity"] for r in rows], color="tab:red")
    ax.set_xticks(range(len(rows)), [r["name"] for r in rows], rotation=90, fontsize=6)
    ax.set_ylabel("accuracy drop (points)")
    ax.set_title("per-layer quantization sensitivity")
    return _png(fig)
