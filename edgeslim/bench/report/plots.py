"""Report plots as PNG bytes (matplotlib, headless Agg backend)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OFF_SCALE_POINTS = 20.0  # stages this far below the best are drawn on the bottom edge


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def accuracy_points(
    stages: list[dict], batch: str = "8"
) -> tuple[list[tuple[float, float, str, bool]], tuple[float, float]]:
    """``[(ms, metric %, name, off_scale)]`` per measured stage, and the y range.

    Stages more than :data:`OFF_SCALE_POINTS` below the best are off scale: drawn on
    the bottom edge of the range.
    """
    pts = [(s["latency_ms"].get(batch), s["accuracy"], s["name"]) for s in stages]
    pts = [(x, 100 * y, n) for x, y, n in pts if x is not None and y is not None]
    if not pts:
        return [], (0.0, 0.0)
    best = max(y for _, y, _ in pts)
    shown = [y for _, y, _ in pts if y >= best - OFF_SCALE_POINTS]
    lo, hi = min(shown), max(shown)
    pad = max(0.5, 0.15 * (hi - lo))
    bottom = lo - pad
    return [(x, y, n, y < bottom) for x, y, n in pts], (bottom, hi + pad)


def accuracy_vs_latency(
    stages: list[dict], batch: str = "8", title: str = "accuracy vs latency per stage"
) -> bytes | None:
    """One point per stage: latency (ms) at ``batch`` against the task's primary metric.

    Points are numbered and named in a key below the axes (names beside close points
    overlap). Stages far below the best (a pruned model before its fine-tune) would
    squash every other point into a line at the top, so they are drawn on the bottom
    edge as a downward triangle with their value in the key, and no line joins points.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    pts, (bottom, top) = accuracy_points(stages, batch)
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    key = []
    for i, (x, y, name, off) in enumerate(pts, 1):
        ax.plot(
            x, bottom if off else y, "v" if off else "o", color="tab:red" if off else "tab:blue"
        )
        ax.annotate(str(i), (x, bottom if off else y), textcoords="offset points",
                    xytext=(0, 7), ha="center", fontsize=9, weight="bold")  # fmt: skip
        key.append(f"{i} {name}: {y:.2f}" + (" (off scale)" if off else ""))
    ax.set_ylim(bottom - 0.05 * (top - bottom), top)  # room for the off-scale marker
    ax.set_xscale("log")
    xs = [p[0] for p in pts]
    ax.set_xlim(min(xs) / 1.3, max(xs) * 1.3)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"latency at batch {batch} (ms, log scale)")
    label = next((s["metric"] for s in stages if s.get("metric")), "top-1")
    ax.set_ylabel(f"{label} (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.text(0.01, 0.01, "\n".join(key), fontsize=8, va="bottom", family="monospace")
    fig.tight_layout(rect=(0, 0.032 * len(key) + 0.03, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


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


def bits_per_layer(rows: list[dict]) -> bytes | None:
    """Bars per layer: learned weight bits (and input bits as dots), the head absent."""
    rows = [r for r in rows if r.get("w_bits") is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(max(6.4, 0.22 * len(rows)), 4.2))
    xs = range(len(rows))
    ax.bar(xs, [r["w_bits"] for r in rows], color="tab:purple", label="weight bits")
    a = [(i, r["a_bits"]) for i, r in enumerate(rows) if r.get("a_bits") is not None]
    if a:
        ax.plot([i for i, _ in a], [b for _, b in a], "o", color="tab:orange", label="input bits")
    ax.set_xticks(list(xs), [r["name"] for r in rows], rotation=90, fontsize=6)
    ax.set_ylim(0, 8.5)
    ax.set_ylabel("bits")
    ax.set_title("learned bits per layer")
    ax.legend()
    return _png(fig)


def hawq_pareto(points: list[dict], chosen: tuple[float, float] | None = None) -> bytes | None:
    """HAWQ-V3's Pareto front: weight size (KB) against predicted damage (sum of Omega)."""
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    xs = [p["size"] / 1024 for p in points]
    ax.plot(xs, [p["omega"] for p in points], "o-", color="tab:blue", label="optimum per budget")
    if chosen is not None:
        ax.plot(chosen[0] / 1024, chosen[1], "*", markersize=14, color="tab:red", label="chosen")
    ax.set_xlabel("weights (KB)")
    ax.set_ylabel("predicted damage (sum of Omega)")
    ax.set_yscale(
        "symlog",
        linthresh=max(
            1e-12,
            min(p["omega"] for p in points if p["omega"] > 0)
            if any(p["omega"] > 0 for p in points)
            else 1e-12,
        ),
    )
    ax.set_title("HAWQ-V3 Pareto front")
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)
