"""A self-contained HTML report: tables and plots inline (PNG as data URIs), no scripts."""

from __future__ import annotations

import base64
import html

from edgeslim.bench.machine import machine_line
from edgeslim.bench.report import plots
from edgeslim.bench.report import search as search_rows
from edgeslim.bench.report.markdown import archive_lines
from edgeslim.bench.report.rows import (
    DEPLOY_HEAD,
    LAYER_HEAD,
    deploy_rows,
    deploy_text,
    layer_row,
    stage_head,
    stage_row,
    summary,
    target_lines,
)

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}img{max-width:100%}.met{color:#080}.miss{color:#b00;font-weight:bold}
"""


def _table(rows: list[list[str]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    tr = ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(tr)}</tbody></table>"


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return f"<p>{html.escape(alt)}: nothing to plot for this run.</p>"
    src = "data:image/png;base64," + base64.b64encode(png).decode()
    cap = html.escape(alt)
    return f"<figure><img alt='{cap}' src='{src}'><figcaption>{cap}</figcaption></figure>"


def _targets(targets: dict) -> str:
    items = [
        f"<li class='{'met' if met else 'miss'}'>{html.escape(text)}</li>"
        for met, text in target_lines(targets)
    ]
    return "<ul>" + ("".join(items) or "<li>No targets were set.</li>") + "</ul>"


def _search(s: dict) -> str:
    met, text = search_rows.verdict(s)
    items = [
        f"<li class='{'met' if ok else 'miss'}'>{html.escape(t)}</li>"
        for ok, t in search_rows.budget_lines(s)
    ]
    items += [f"<li>{html.escape(t)}</li>" for t in search_rows.notes_lines(s)]
    return (
        f"<h2>Search</h2><p class='{'met' if met else 'miss'}'>{html.escape(text)}</p>"
        f"<ul>{''.join(items)}</ul><h3>Chosen policy</h3>"
        + _table(search_rows.policy_rows(s), search_rows.POLICY_HEAD)
        + "<h3>Policies measured</h3>"
        + _table(search_rows.round_rows(s), search_rows.ROUND_HEAD)
    )


def _deploy(d: dict, stages: list[dict]) -> str:
    rows = _table(deploy_rows(d), stage_head(stages, DEPLOY_HEAD)) if d["candidates"] else ""
    return f"<h2>Deploy runtime</h2><p>{html.escape(deploy_text(d))}</p>" + rows


def _detections(path: str | None) -> str:
    from pathlib import Path

    if not path or not Path(path).is_file():
        return ""
    return "<h2>Detections</h2>" + _img(Path(path).read_bytes(), "before and after, test images")


def _notes(notes: list[dict]) -> str:
    if not notes:
        return ""
    items = "".join(
        f"<li><b>{html.escape(n['stage'])}</b>: {html.escape(n['text'])}</li>" for n in notes
    )
    return f"<h2>Stage notes</h2><ul>{items}</ul>"


def _archive(a: dict | None) -> str:
    if not a:
        return ""
    head, _, text = archive_lines(a)
    return f"<h2>{html.escape(head.removeprefix('## '))}</h2><p>{html.escape(text)}</p>"


def render(report: dict) -> str:
    """The whole report as one HTML document (opens offline in any browser)."""
    title = html.escape(f"edgeslim report: {report['model']}")
    search = report.get("search")
    body = [
        f"<h1>{title}</h1>",
        f"<p>Recipe <code>{html.escape(str(report['recipe']))}</code>, data "
        f"<code>{html.escape(str(report['data']))}</code>, {report['threads']} threads.</p>",
        f"<p>{html.escape(machine_line(report['machine']))}</p>" if report.get("machine") else "",
        f"<p><b>{html.escape(summary(report['summary']))}</b></p>",
        "<h2>Stages</h2>",
        _table([stage_row(s) for s in report["stages"]], stage_head(report["stages"])),
        _img(plots.accuracy_vs_latency(report["stages"]), "accuracy vs latency per stage"),
        "<h2>Targets</h2>",
        _targets(report["targets"]),
        _deploy(report["deploy"], report["stages"]) if report.get("deploy") else "",
        _archive(report.get("archive")),
        _detections(report.get("detections_png")),
        _notes(report.get("notes") or []),
        _search(search) if search else "",
        "<h2>Layers</h2>",
        _img(plots.channels_kept(report["layers"]), "channels kept per layer"),
        _img(plots.sensitivity(report["layers"]), "per-layer quantization sensitivity"),
        _table([layer_row(r) for r in report["layers"]], LAYER_HEAD),
    ]
    head = f"<meta charset='utf-8'><title>{title}</title><style>{STYLE}</style>"
    return (
        f"<!DOCTYPE html><html><head>{head}</head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
