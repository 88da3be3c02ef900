"""Measure every stage of a run side by side and check the recipe's targets.

All stages (plus the FP32 eager baseline) are timed in one interleaved loop, so
the ratios in the report hold on a noisy machine.
"""

from __future__ import annotations

from torch import nn

from edgeslim.bench.accuracy import evaluate_model, evaluate_onnx, primary_value
from edgeslim.bench.latency import measure, onnx_target, torch_target
from edgeslim.bench.macs import count_macs, count_params, zero_fraction
from edgeslim.bench.size import onnx_bytes, safetensors_bytes
from edgeslim.bench.stages import stage_record
from edgeslim.data import dataset_info, load_dataset, make_loader
from edgeslim.recipe.schema import Recipe
from edgeslim.recipe.state import PipelineState
from edgeslim.tasks import Task, get_task

BASELINE = "input (fp32, torch eager)"


def measure_history(
    history: list[tuple[str, PipelineState]], recipe: Recipe, progress: bool = True
) -> list[dict]:
    """Stage records (see :mod:`edgeslim.bench.stages`) for the baseline and every stage.

    ``accuracy`` is the data's task's primary metric (top-1 for classification).
    """
    m = recipe.measure
    task = recipe_task(recipe)
    label = task.primary_metric.label
    loader = None
    if recipe.data:
        loader = make_loader(load_dataset(recipe.data, m.eval_split), 256, shuffle=False)
    rows = [
        (name if name != "input" else "input (fp32, onnxruntime)", st)
        for name, st in history
        if name != "export"
    ]
    inp = history[0][1].lm
    targets = [torch_target(inp.model, inp.require_input(), BASELINE)]
    targets += [
        onnx_target(st.onnx, f"{i}:{name}", st.lm.require_input())
        for i, (name, st) in enumerate(rows)
    ]
    rep = measure(targets, tuple(m.batches), runs=m.runs, threads=m.threads, progress=progress)
    spec = inp.require_input()
    base_acc = primary_value(evaluate_model(inp.model, loader, task)) if loader else None
    records = [
        stage_record(
            BASELINE,
            BASELINE,
            rep,
            runtime="torch",
            accuracy=base_acc,
            metric=label,
            size_bytes=safetensors_bytes(inp.model),
            **_counts(inp.model, spec),
        )
    ]
    for i, (name, st) in enumerate(rows):
        acc = primary_value(evaluate_onnx(st.onnx, loader, task)) if loader else None
        rec = stage_record(
            name,
            f"{i}:{name}",
            rep,
            runtime="onnxruntime",
            accuracy=acc,
            metric=label,
            size_bytes=onnx_bytes(st.onnx),
            **_counts(st.lm.model, st.lm.require_input()),
        )
        rec["deployable"] = str(st.onnx)
        records.append(rec)
    return records


def recipe_task(recipe: Recipe) -> Task:
    """The task of the recipe's data (``classification`` without data)."""
    return get_task(dataset_info(recipe.data).task if recipe.data else "classification")


def _counts(model: nn.Module, spec) -> dict:
    return {
        "params": count_params(model),
        "macs": count_macs(model, spec.example())[0],
        "sparsity": zero_fraction(model),
    }


def check_targets(records: list[dict], recipe: Recipe) -> dict:
    """``{target: {"target": x, "achieved": y, "met": bool}}`` for every target the recipe set.

    The metric drop is in points of the data's task's primary metric, positive when the
    last stage is worse (the metric's direction decides which way is worse).
    """
    t, first, last = recipe.targets, records[0], records[-1]
    out: dict[str, dict] = {}
    key, limit = _drop_target(t)
    if limit is not None and first["accuracy"] is not None:
        metric = recipe_task(recipe).primary_metric
        drop = 100 * metric.drop(first["accuracy"], last["accuracy"])
        out[key] = {
            "target": limit,
            "metric": metric.label,
            "achieved": drop,
            "met": drop <= limit,
        }
    if t.latency_ms is not None:
        lat = last["latency_ms"].get(str(t.batch))
        out["latency_ms"] = {
            "target": t.latency_ms,
            "batch": t.batch,
            "achieved": lat,
            "met": lat is not None and lat <= t.latency_ms,
        }
    if t.size_bytes is not None:
        out["size_bytes"] = {
            "target": t.size_bytes,
            "achieved": last["size_bytes"],
            "met": last["size_bytes"] <= t.size_bytes,
        }
    if t.macs is not None:
        out["macs"] = {"target": t.macs, "achieved": last["macs"], "met": last["macs"] <= t.macs}
    return out


def _drop_target(targets) -> tuple[str, float | None]:
    """``(key, points)`` of the recipe's metric-drop target, under the name it used."""
    new = getattr(targets, "max_metric_drop", None)  # the schema's newer name, when present
    if new is not None:
        return "max_metric_drop", new
    return "max_accuracy_drop", getattr(targets, "max_accuracy_drop", None)


def layer_rows(history: list[tuple[str, PipelineState]]) -> list[dict]:
    """Per-layer table: channels kept (input vs final), bit-width and sensitivity."""
    first, last = history[0][1].lm.model, history[-1][1].lm.model
    final = dict(last.named_modules())
    facts: dict[str, dict] = {}
    for _, st in history:
        for name, f in st.layers.items():
            facts.setdefault(name, {}).update(f)
    rows = []
    for name, mod in first.named_modules():
        width = _width(mod)
        if width is None:
            continue
        kept = _width(final[name]) if name in final else None
        f = facts.get(name, {})
        rows.append(
            {
                "name": name,
                "type": type(mod).__name__,
                "channels": width,
                "kept": kept,
                "bits": f.get("bits"),
                "sensitivity": f.get("sensitivity"),
            }
        )
    return rows


def _width(mod: nn.Module) -> int | None:
    for attr in ("out_channels", "out_features"):
        if hasattr(mod, attr) and isinstance(getattr(mod, attr), int):
            return getattr(mod, attr)
    return None
