"""The report's search section: budget verdict, chosen policy, rounds (shared by md and html)."""

from __future__ import annotations

from edgeslim.bench.report.rows import fmt

POLICY_HEAD = ["group (override key)", "channels", "kept", "ratio removed"]
ROUND_HEAD = ["#", "how", "aimed at", "predicted", "measured", "met"]


def _values(d: dict, keys) -> str:
    return ", ".join(f"{k} {fmt(d.get(k), '{:.4g}')}" for k in keys)


def verdict(s: dict) -> tuple[bool, str]:
    """``(met, one sentence)``: whether the budget was met, or why it cannot be."""
    where = f"batch {s.get('batch')}, {'INT8 QDQ' if s.get('int8') else 'FP32'} on ONNX Runtime"
    budget = ", ".join(f"{k} <= {v:.4g}" for k, v in s["budget"].items())
    if s.get("impossible"):
        return False, (
            f"Budget {budget} ({where}) is IMPOSSIBLE with these candidates: {s['reason']}. "
            f"Closest point found (returned): {_values(s['measured'], s['budget'])}."
        )
    return True, (
        f"Budget {budget} ({where}): met. Measured {_values(s['measured'], s['budget'])}; "
        f"predicted {_values(s['predicted'], s['budget'])}."
    )


def budget_lines(s: dict) -> list[tuple[bool, str]]:
    out = []
    for k, b in s["budget"].items():
        m, p = s["measured"].get(k), s["predicted"].get(k)
        met = m is not None and m <= b
        out.append(
            (
                met,
                f"{k}: budget {b:.4g}, predicted {fmt(p, '{:.4g}')}, measured "
                f"{fmt(m, '{:.4g}')}: {'met' if met else 'NOT met'}",
            )
        )
    return out


def notes_lines(s: dict) -> list[str]:
    acc = s.get("accuracy") or {}
    fl = s.get("float_layers") or []
    lines = [
        f"Kept in float: {', '.join(fl)}."
        if fl
        else "Kept in float: none (all INT8 where quantized).",
        f"{acc.get('metric', 'Top-1')} on the search's validation batches: dense "
        f"{fmt(100 * acc['dense_top1'], '{:.2f}')}%"
        f", pruned before fine-tuning {fmt(100 * acc['top1_before_finetune'], '{:.2f}')}% "
        "(the recipe's next stage fine-tunes; the Targets section has the final accuracy)."
        if acc.get("dense_top1") is not None and acc.get("top1_before_finetune") is not None
        else "",
    ]
    return [x for x in lines if x]


def policy_rows(s: dict) -> list[list[str]]:
    return [
        [key, str(ch[0]), str(ch[1]), f"{s['policy'][key]:g}"]
        for key, ch in (s.get("channels") or {}).items()
    ]


def round_rows(s: dict) -> list[list[str]]:
    keys = list(s["budget"])
    return [
        [
            str(i + 1),
            r["how"],
            _values(r["effective_budget"], keys) if r["effective_budget"] else "-",
            _values(r["predicted"], keys),
            _values(r["measured"], keys),
            "yes" if r["met"] else "no",
        ]
        for i, r in enumerate(s.get("rounds") or [])
    ]
