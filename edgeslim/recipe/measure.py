"""Measure every stage of a run side by side and check the recipe's targets.

All stages (plus the FP32 eager baseline) are timed in one interleaved loop, so
the ratios in the report hold on a noisy machine.
"""

from __future__ import annotations

from torch import nn

from edgeslim.bench.runtimes import candidates, choose
from edgeslim.core.errors import EdgeslimError
from edgeslim.data import dataset_info, load_dataset, make_loader
from edgeslim.export.runtimes import get_runtime
from edgeslim.recipe.deploy import is_fake_quantized
from edgeslim.recipe.schema import Recipe
from edgeslim.recipe.state import PipelineState
from edgeslim.tasks import Task, get_task
from edgeslim.workflows.measure import Stage, measure_stages

BASELINE = "input (fp32, torch eager)"


def measure_history(
    history: list[tuple[str, PipelineState]], recipe: Recipe, progress: bool = True
) -> tuple[list[dict], dict | None]:
    """Stage records (see :mod:`edgeslim.bench.stages`) for the baseline and every stage.

    ``accuracy`` is the data's task's primary metric (top-1 for classification). With
    ``targets.runtime`` other than ``onnxruntime``, the final model is also timed and
    evaluated on every candidate (runtime, precision) in the same interleaved loop, the
    fastest one within ``max_metric_drop`` is chosen (:func:`edgeslim.bench.runtimes.choose`)
    and, when it is not ONNX Runtime, appended as the last stage, ``deploy (RUNTIME
    PRECISION)``. Returns the records and the deploy section (None for plain ORT).
    """
    m = recipe.measure
    loader = None
    if recipe.data:
        loader = make_loader(load_dataset(recipe.data, m.eval_split), 256, shuffle=False)
    inp = history[0][1].lm
    stages = [Stage(BASELINE, inp.model, inp.require_input(), runtime="torch")]
    stages += [
        Stage(
            name if name != "input" else "input (fp32, onnxruntime)",
            st.lm.model,
            st.lm.require_input(),
            onnx=st.onnx,
            extra={"deployable": str(st.onnx)},
        )
        for name, st in history
        if name != "export"
    ]
    final = history[-1][1]
    extra = deploy_stages(final, recipe.targets.runtime, _last_float(history))
    records, _ = measure_stages(
        stages + extra,
        batches=tuple(m.batches),
        runs=m.runs,
        threads=m.threads,
        loader=loader,
        task=recipe_task(recipe),
        progress=progress,
    )
    records, tried = records[: len(stages)], records[len(stages) :]
    if recipe.targets.runtime == "onnxruntime":
        return records, None
    return records, pick_deploy(records, tried, recipe)


def _last_float(history: list[tuple[str, PipelineState]]) -> PipelineState | None:
    """The last stage whose model is still float (before quantization), with a file."""
    for _, st in reversed(history):
        if st.onnx is not None and not is_fake_quantized(st.lm.model):
            return st
    return None


def deploy_stages(
    final: PipelineState, runtime: str, float_state: PipelineState | None = None
) -> list[Stage]:
    """The final model on every (runtime, precision) that ``runtime`` allows, ORT aside.

    When the final model is INT8 and ``float_state`` (the model before quantization) is
    given, its BF16 deployment on every runtime with native BF16 kernels is a candidate
    too: on a CPU with AMX or AVX512-BF16, BF16 can rival INT8 at a smaller accuracy cost.
    """
    if runtime == "onnxruntime" or final.onnx is None:
        return []
    names = None if runtime == "best" else [runtime]
    quantized = is_fake_quantized(final.lm.model)
    pairs = [(final, c) for c in candidates(final.onnx, module_ok=not quantized, runtimes=names)]
    if quantized and float_state is not None:
        float_cands = candidates(float_state.onnx, module_ok=False, runtimes=names)
        pairs += [(float_state, c) for c in float_cands if c.precision == "bf16"]
    return [
        Stage(
            f"deploy ({c.runtime} {c.precision})",
            st.lm.model,
            st.lm.require_input(),
            onnx=None if get_runtime(c.runtime).artifact == "module" else st.onnx,
            runtime=c.runtime,
            precision=c.hint,
            extra={"deployable": str(st.onnx)},
        )
        for st, c in pairs
        if c.runtime != "onnxruntime"
    ]


def pick_deploy(records: list[dict], tried: list[dict], recipe: Recipe) -> dict:
    """Choose the deploy runtime; append its record to ``records`` unless it is ORT."""
    t = recipe.targets
    pool = tried + ([records[-1]] if t.runtime == "best" else [])
    if not pool:
        return {
            "runtime": "onnxruntime",
            "precision": records[-1].get("precision", "fp32"),
            "why": f"{t.runtime}: no installed runtime other than ONNX Runtime runs this model",
            "candidates": [],
        }
    batch = t.batch if str(t.batch) in records[-1]["latency_ms"] else recipe.measure.batches[-1]
    ref = records[0]["accuracy"]
    choice = choose(pool, batch, t.max_metric_drop, ref)
    chosen = next(
        r
        for r in pool
        if (r["runtime"], r["precision"]) == (choice.candidate.runtime, choice.candidate.precision)
    )
    if chosen is not records[-1]:
        records.append(chosen)
    return {
        "runtime": chosen["runtime"],
        "precision": chosen["precision"],
        "onnx": chosen.get("deployable"),  # the file it runs (a BF16 pick runs the float one)
        "why": choice.why,
        "batch": batch,
        "candidates": [
            {k: r.get(k) for k in ("name", "runtime", "precision", "latency_ms", "accuracy")}
            for r in pool
        ],
    }


def recipe_task(recipe: Recipe) -> Task:
    """The task of the recipe's data (``classification`` without data)."""
    return get_task(dataset_info(recipe.data).task if recipe.data else "classification")


def check_targets(records: list[dict], recipe: Recipe) -> dict:
    """``{target: {"target": x, "achieved": y, "met": bool}}`` for every target the recipe set.

    ``max_metric_drop`` is about ``metric`` (default: the data's task's primary metric);
    its drop is in points (100x a fraction metric such as top-1), positive when the last
    stage is worse than the input, whichever direction the metric counts as better.
    """
    t, first, last = recipe.targets, records[0], records[-1]
    out: dict[str, dict] = {}
    if t.max_metric_drop is not None and first["accuracy"] is not None:
        task = recipe_task(recipe)
        spec = task.metric(t.metric or task.primary)  # names the task's metrics on a miss
        # rounded: float noise must neither show (-0.40000000000000036) nor flip "met"
        before, after = (_metric(r, spec.name, task.primary) for r in (first, last))
        drop = round(100 * spec.drop(before, after), 6)
        out["max_metric_drop"] = {
            "metric": spec.name,
            "target": t.max_metric_drop,
            "achieved": drop,
            "met": drop <= t.max_metric_drop,
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


def _metric(record: dict, name: str, primary: str) -> float:
    """Metric ``name`` of a stage record (``accuracy`` holds the ``primary`` one)."""
    metrics = record.get("metrics") or {}
    if name in metrics:
        return float(metrics[name])
    if name != primary or record.get("accuracy") is None:
        raise EdgeslimError(f"stage {record['name']!r} has no {name!r} measured")
    return float(record["accuracy"])


def layer_rows(history: list[tuple[str, PipelineState]]) -> list[dict]:
    """Per-layer table: channels kept (input vs final), bit-width, sensitivity, low-rank rank."""
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
        row = {
            "name": name,
            "type": type(mod).__name__,
            "channels": width,
            "kept": kept,
            "bits": f.get("bits") or _qat_bits(f),
            "sensitivity": f.get("sensitivity"),
            "rank": f.get("rank"),  # a factorized layer's rank (lowrank stage)
        }
        # lowrank with measured: the layer's ONNX Runtime ms, dense and factorized;
        # fuse: the BatchNorm folded into the layer
        row.update({k: f[k] for k in ("dense_ms", "factorized_ms", "bn_folded") if k in f})
        rows.append(row)
    return rows


def _qat_bits(f: dict) -> str | None:
    """``"W4A8"`` from a QAT stage's per-layer ``w_bits`` / ``a_bits`` (learned bits too)."""
    if f.get("w_bits") is None:
        return None
    a = f.get("a_bits")
    return f"W{f['w_bits']:g}A{a:g}" if a is not None else f"W{f['w_bits']:g}Afloat"


def _width(mod: nn.Module) -> int | None:
    for attr in ("out_channels", "out_features"):
        if hasattr(mod, attr) and isinstance(getattr(mod, attr), int):
            return getattr(mod, attr)
    return None
