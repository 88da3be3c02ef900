"""Reports: ``report.json``, ``report.md`` and a self-contained ``report.html`` with plots."""

from __future__ import annotations

import json
from pathlib import Path

from edgeslim.core.atomic import write_text_atomic


def summarize(stages: list[dict]) -> dict:
    """Last stage against the first (the FP32 eager baseline)."""
    first, last = stages[0], stages[-1]
    out: dict = {}
    for b in ("1", "8"):
        if first["latency_ms"].get(b) and last["latency_ms"].get(b):
            out[f"speedup_b{b}"] = first["latency_ms"][b] / last["latency_ms"][b]
    out["size_ratio"] = first["size_bytes"] / last["size_bytes"]
    if last.get("metric"):
        out["metric"] = last["metric"]
    if first["accuracy"] is not None and last["accuracy"] is not None:
        out["accuracy_change_pts"] = 100 * (last["accuracy"] - first["accuracy"])
    return out


def write_reports(out_dir: str | Path, report: dict) -> None:
    """Write report.json, report.md and report.html into ``out_dir`` (each atomically)."""
    from edgeslim.bench.report import html, markdown

    out_dir = Path(out_dir)
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    write_text_atomic(out_dir / "report.md", markdown.render(report))
    write_text_atomic(out_dir / "report.html", html.render(report))
