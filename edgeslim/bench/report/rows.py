"""Table rows and the summary sentence, shared by the Markdown and HTML reports."""

from __future__ import annotations

STAGE_HEAD = [
    "stage",
    "runtime",
    "top-1 %",
    "b1 p50 ms",
    "b1 p90 ms",
    "b8 p50 ms",
    "b8 p90 ms",
    "size KB",
    "params",
    "MMACs",
    "sparsity %",
]
LAYER_HEAD = [
    "layer", "type", "channels", "kept", "bits", "sensitivity (pts)", "ORT ms", "ORT kernel (fused)"
]  # fmt: skip


def stage_head(stages: list[dict], head: list[str] = STAGE_HEAD) -> list[str]:
    """``head`` (:data:`STAGE_HEAD`) with the stages' metric (``"mIoU %"`` for segmentation)."""
    from edgeslim.bench.stages import metric_label

    return [f"{metric_label(stages)} %" if h == "top-1 %" else h for h in head]


def fmt(v, spec: str = "{:.3f}") -> str:
    return spec.format(v) if isinstance(v, (int, float)) else "-"


def stage_row(s: dict) -> list[str]:
    acc = fmt(100 * s["accuracy"], "{:.2f}") if s["accuracy"] is not None else "-"
    lat, p90 = s["latency_ms"], s.get("latency_p90_ms", {})
    prec = s.get("precision")
    return [
        s["name"],
        f"{s['runtime']} {prec}" if prec else s["runtime"],
        acc,
        fmt(lat.get("1")),
        fmt(p90.get("1")),
        fmt(lat.get("8")),
        fmt(p90.get("8")),
        f"{s['size_bytes'] / 1024:.1f}",
        f"{s['params']:,}",
        f"{s['macs'] / 1e6:.2f}",
        f"{100 * s.get('sparsity', 0):.1f}",
    ]


def layer_row(r: dict) -> list[str]:
    kept = str(r["kept"]) if r["kept"] is not None else "removed"
    bits = str(r["bits"]) if r["bits"] is not None else "fp32"
    return [
        r["name"],
        r["type"],
        str(r["channels"]),
        kept,
        bits,
        fmt(r.get("sensitivity"), "{:.2f}"),
        fmt(r.get("ms"), "{:.3f}"),
        r.get("kernel") or "-",
    ]


def target_line(key: str, t: dict) -> str:
    """``max_metric_drop (top1): wanted 1.0, achieved 0.80: met`` for one checked target.

    Example:
        >>> target_line("latency_ms", {"target": 2.0, "batch": 8, "achieved": 1.2345, "met": True})
        'latency_ms (batch 8): wanted 2.0, achieved 1.23: met'
    """
    detail = t.get("metric") or (f"batch {t['batch']}" if "batch" in t else None)
    label = f"{key} ({detail})" if detail else key
    return (
        f"{label}: wanted {t['target']}, achieved {human(t['achieved'])}: "
        f"{'met' if t['met'] else 'NOT MET'}"
    )


def human(v: object) -> str:
    """A measured value rounded for people: 2 decimals, 3 significant digits below 0.1."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "-" if v is None else str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.3g}" if 0 < abs(v) < 0.1 else f"{v:.2f}"


def target_lines(targets: dict) -> list[tuple[bool, str]]:
    return [(t["met"], target_line(k, t)) for k, t in targets.items()]


def summary(s: dict) -> str:
    return (
        f"Last stage vs FP32 eager baseline: {fmt(s.get('speedup_b8'), '{:.2f}')}x faster at "
        f"batch 8, {fmt(s.get('speedup_b1'), '{:.2f}')}x at batch 1, "
        f"{fmt(s.get('size_ratio'), '{:.1f}')}x smaller, {s.get('metric', 'accuracy')} change "
        f"{fmt(s.get('accuracy_change_pts'), '{:+.2f}')} points."
    )


DEPLOY_HEAD = ["runtime", "precision", "top-1 %", "b1 ms", "b8 ms", "chosen"]


def deploy_rows(d: dict) -> list[list[str]]:
    """One row per (runtime, precision) the final model was timed and evaluated on."""
    rows = []
    for c in d["candidates"]:
        acc = fmt(100 * c["accuracy"], "{:.2f}") if c.get("accuracy") is not None else "-"
        lat = c.get("latency_ms") or {}
        mine = (c["runtime"], c["precision"]) == (d["runtime"], d["precision"])
        rows.append(
            [
                c["runtime"],
                c["precision"],
                acc,
                fmt(lat.get("1")),
                fmt(lat.get("8")),
                "yes" if mine else "",
            ]
        )
    return rows


def deploy_text(d: dict) -> str:
    return f"Deployed on {d['runtime']} ({d['precision']}): {d['why']}."
