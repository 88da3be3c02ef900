"""The Markdown report: summary, per-stage table, targets, per-layer table."""

from __future__ import annotations

from edgeslim.bench.machine import machine_line
from edgeslim.bench.report import search
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


def table(rows: list[list[str]], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render(report: dict) -> str:
    targets = [
        f"- {'' if met else '**'}{text}{'' if met else '**'}"
        for met, text in target_lines(report["targets"])
    ] or ["No targets were set."]
    parts = [
        f"# edgeslim report: {report['model']}",
        f"Recipe `{report['recipe']}`, data `{report['data']}`, {report['threads']} threads.",
        *([machine_line(report["machine"])] if report.get("machine") else []),
        "",
        f"**{summary(report['summary'])}**",
        "",
        "## Stages",
        table([stage_row(s) for s in report["stages"]], stage_head(report["stages"])),
        "",
        "## Targets",
        *targets,
    ]
    if report.get("deploy"):
        d = report["deploy"]
        parts += ["", "## Deploy runtime", "", deploy_text(d), ""]
        if d["candidates"]:
            parts.append(table(deploy_rows(d), stage_head(report["stages"], DEPLOY_HEAD)))
    if report.get("archive"):
        parts += ["", *archive_lines(report["archive"])]
    if report.get("detections_png"):
        parts += ["", "## Detections", "", "![before and after](detections.png)"]
    if report.get("notes"):
        parts += ["", "## Stage notes", ""]
        parts += [f"- **{n['stage']}**: {n['text']}" for n in report["notes"]]
    if report.get("search"):
        parts += ["", *search_section(report["search"])]
    parts += ["", "## Layers", table([layer_row(r) for r in report["layers"]], LAYER_HEAD), ""]
    return "\n".join(parts)


def archive_lines(a: dict) -> list[str]:
    """The compressed archive of a sparse model (``edgeslim.recipe.archive``), beside its ONNX."""
    return [
        "## Compressed archive",
        "",
        f"`{a['file']}`: the `{a['stage']}` model ({a['method']}, "
        f"{100 * a['all_weights_sparsity']:.1f}% of all weights zero) as a bitmask, "
        f"{a['values']} values and zstd: **{a['bytes'] / 1024:.1f} KB**, "
        f"{a['onnx_over_archive']:.2f}x smaller than its dense ONNX file "
        f"({a['onnx_bytes'] / 1024:.1f} KB). The ONNX file runs the zeros densely: the "
        "sparsity buys size on disk, not speed.",
    ]


def search_section(s: dict) -> list[str]:
    """Budget verdict, per-budget lines, the chosen policy and every measured round."""
    met, text = search.verdict(s)
    out = ["## Search", "", text if met else f"**{text}**", ""]
    out += [f"- {t}" if ok else f"- **{t}**" for ok, t in search.budget_lines(s)]
    out += [f"- {t}" for t in search.notes_lines(s)]
    out += ["", "Chosen policy:", "", table(search.policy_rows(s), search.POLICY_HEAD)]
    out += ["", "Policies measured:", "", table(search.round_rows(s), search.ROUND_HEAD)]
    return out
