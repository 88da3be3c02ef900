"""``quantize`` stage: INT8 post-training quantization; the result stays a PyTorch model.

The stage applies :class:`~edgeslim.quant.config.PTQConfig` through the method
registry (:func:`edgeslim.core.methods.apply`), keeps the fake-quant model as the
pipeline's model (it saves, reloads and trains: a ``finetune`` after it is
quantization-aware training) and writes its INT8 QDQ ONNX with edgeslim's own
scales.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field

from edgeslim.models.spec import LoadedModel
from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import Strict
from edgeslim.recipe.state import PipelineContext, PipelineState

WEIGHT_OBSERVERS = ("minmax", "mse", "aciq", "percentile")


class HawqSettings(Strict):
    """HAWQ-V3 mixed precision: a weight bit-width per layer from ``choices`` by an ILP.

    ``avg_bits`` is the size budget (weights x bits of the studied layers); ``latency_ms``
    an optional budget on their summed ORT time, each layer measured alone at each
    bit-width (float and INT8; 4-bit weights run in the INT8 kernel). An impossible
    latency budget keeps the fastest choice and the note says so.
    """

    avg_bits: float = Field(6.0, ge=2, le=32)
    choices: list[int] = Field(default_factory=lambda: [4, 8, 32])
    latency_ms: float | None = Field(None, gt=0)
    probes: int = Field(16, ge=1, description="Hutchinson probes per Hessian trace")
    batches: int = Field(2, ge=1, description="training batches of 64 for the Hessian")


class QuantizeSettings(Strict):
    w_bits: int = Field(8, ge=2, le=8)
    a_bits: Literal[8] = 8  # ONNX Runtime's integer kernels take 8-bit activations
    calib_method: Literal["minmax", "percentile", "kl", "mse", "aciq"] = "percentile"
    per_channel: bool = True
    calib_batches: int = Field(16, ge=1)
    bias_correction: bool = False
    exclude: list[str] = Field(default_factory=list)
    # > 0: per-layer sensitivity for the report, the top-1 drop (points) with only that
    # layer's weights quantized, on this many validation batches of 256
    sensitivity_batches: int = Field(0, ge=0)
    hawq: HawqSettings | None = None  # mixed INT4/INT8/float weights by HAWQ-V3


def ptq_config(
    s: QuantizeSettings, keep_float: tuple[str, ...] = (), low_bits: dict[str, int] | None = None
):
    """The :class:`~edgeslim.quant.config.PTQConfig` of these settings (``keep_float`` excluded,
    ``low_bits`` layers at their own weight bits)."""
    from edgeslim.quant.config import PTQConfig, activation_spec, weight_spec

    wmethod = s.calib_method if s.calib_method in WEIGHT_OBSERVERS else "minmax"
    weight = weight_spec(s.w_bits, wmethod, s.per_channel)
    return PTQConfig(
        weight=weight,
        overrides=tuple((n, weight.with_(bits=b)) for n, b in (low_bits or {}).items()),
        activation=activation_spec(s.a_bits, s.calib_method),
        calib_batches=s.calib_batches,
        bias_correction=s.bias_correction,
        exclude=tuple(s.exclude) + tuple(keep_float),
    )


REDUCED_NOTE = (
    ", weights coded in 7 bits of their int8 storage (this CPU has no VNNI: its u8 x s8 "
    "kernels saturate full-range 8-bit weights)"
)


@register_stage("quantize", QuantizeSettings, "INT8 PTQ with edgeslim's own scales, ONNX QDQ")
def run(state: PipelineState, s: QuantizeSettings, ctx: PipelineContext) -> PipelineState:
    from edgeslim.core.methods import apply
    from edgeslim.quant.qdq import export_qdq
    from edgeslim.recipe.deploy import pack_low_bits
    from edgeslim.sparsity import squash_loaded
    from edgeslim.workflows.quantize import calibration_loader

    data = ctx.require_data("quantize")
    # layers a preceding ``search`` stage chose to keep in float (its latency assumed it)
    found = state.notes.get("search") or {}
    keep_float = tuple(found.get("float_layers", ()))
    low = {str(k): int(v) for k, v in (found.get("low_bits") or {}).items()}
    cfg = ptq_config(s, keep_float, low)
    lm = squash_loaded(state.lm)  # sparsity masks: quantize the zeros (PTQ's twins are plain)
    hawq = _hawq(lm, s.hawq, keep_float, ctx) if s.hawq is not None else None
    if hawq is not None:
        cfg = replace(cfg, overrides=(*hawq.ptq_overrides(), *cfg.overrides))
    qmodel, record = apply(lm.model, cfg, calib=calibration_loader(data))
    res = export_qdq(qmodel, lm.require_input(), ctx.work_dir / "int8.onnx")
    quantized = [n for n, c in record.layers.items() if c.weight_spec_for(n) is not None]
    layers = {k: dict(v) for k, v in state.layers.items()}
    chosen = {**low, **(hawq.bits if hawq is not None else {})}
    packed = pack_low_bits(res.path, {n: chosen.get(n, s.w_bits) for n in quantized})
    for name in quantized:
        layers.setdefault(name, {})["bits"] = chosen.get(name, s.w_bits)
    if s.sensitivity_batches:
        for name, drop in _sensitivity(qmodel, quantized, s.sensitivity_batches, ctx).items():
            layers[name]["sensitivity"] = 100 * drop
    notes = {
        **state.notes,
        "quantize": f"W{s.w_bits}A{s.a_bits} {s.calib_method}, {len(quantized)} layers"
        + (f", {len(keep_float)} kept in float by search" if keep_float else "")
        + (REDUCED_NOTE if cfg.reduce_range and s.w_bits == 8 else "")
        + (hawq_note(hawq) if hawq is not None else "")
        + (
            f"; search gave {len(low)} layers {sorted(set(low.values()))}-bit weights"
            if low
            else ""
        )
        + packed,
    }
    methods = [*lm.methods, record.to_dict()]
    new = LoadedModel(qmodel, lm.source, lm.input, lm.name, lm.meta, methods)
    return PipelineState(new, res.path, layers, notes)


def _sensitivity(model, names: list[str], batches: int, ctx: PipelineContext) -> dict:
    """Per quantized layer, the primary metric lost with only its weights quantized."""
    import itertools

    from edgeslim.bench.accuracy import evaluate_model
    from edgeslim.quant.sensitivity import weight_drops
    from edgeslim.tasks import get_task

    task = get_task(ctx.task)
    val = list(itertools.islice(ctx.loader("val"), batches))
    return weight_drops(model, names, lambda m: evaluate_model(m, val, task)[task.primary])


def _hawq(lm, h: HawqSettings, keep_float: tuple[str, ...], ctx: PipelineContext):
    """HAWQ-V3's bits for the model's conv/linear layers (those a search kept float excluded)."""
    import itertools
    import json

    from edgeslim.bench.report import plots
    from edgeslim.core.atomic import write_bytes_atomic, write_text_atomic
    from edgeslim.quant.mixed import HawqConfig, hawq_bits
    from edgeslim.quant.mixed.hessian import default_layers
    from edgeslim.tasks import get_task

    task = get_task(ctx.task)
    names = tuple(n for n in default_layers(lm.model) if n not in keep_float)
    batches = list(itertools.islice(ctx.loader("train", batch_size=64), h.batches))
    numel = sum(lm.model.get_submodule(n).weight.numel() for n in names)
    latency = None
    if h.latency_ms is not None:
        from edgeslim.workflows.layer_latency import bit_latencies

        example = lm.require_input().example(batch=ctx.recipe.targets.batch)
        latency = bit_latencies(lm.model, example, names, h.choices,
                                threads=ctx.recipe.measure.threads)  # fmt: skip
    rec = hawq_bits(
        lm.model,
        lambda out, y: task.loss(out, y, 0.0),
        batches,
        size_budget=h.avg_bits * numel / 8,
        config=HawqConfig(choices=tuple(h.choices), probes=h.probes, layers=names),
        latency=latency,
        latency_budget=h.latency_ms,
    )
    d = rec.as_dict()
    write_text_atomic(ctx.work_dir / "hawq.json", json.dumps(d, indent=2) + "\n")
    png = plots.hawq_pareto(d["pareto"], (rec.size, rec.omega))
    if png is not None:
        write_bytes_atomic(ctx.work_dir / "hawq_pareto.png", png)
    return rec


def hawq_bits_for(lm, h: HawqSettings, ctx: PipelineContext) -> dict[str, int]:
    """HAWQ-V3's weight bits per layer (32: float), for a stage that applies them itself."""
    return dict(_hawq(lm, h, (), ctx).bits)


def hawq_note(rec) -> str:
    """``; HAWQ-V3: 5 layers at 4 bits, 12 at 8, 1 float (avg 6.00 weight bits) ...``."""
    from collections import Counter

    counts = Counter(rec.bits.values())
    parts = [f"{n} at {b} bits" if b != 32 else f"{n} float" for b, n in sorted(counts.items())]
    numel = sum(lb.numel for lb in rec.layers)
    text = f"; HAWQ-V3: {', '.join(parts)} (avg {8 * rec.size / numel:.2f} weight bits)"
    if rec.latency is not None:
        text += f", {rec.latency:.3f} ms for the layers measured alone"
    if rec.impossible:
        text += f"; {rec.impossible}: kept the fastest choice"
    return text
