"""Per-layer quantization sensitivity: quantize one layer at a time, measure the damage.

For each quantized layer only its weights and its input activation are
quantized (everything else stays float); the table reports the top-1 drop
against the float model and the SQNR of the logits. This is the layer-wise
analysis NVIDIA's "Integer Quantization for Deep Learning Inference" (Wu et al.
2020, Section 5) uses to pick layers to keep in higher precision, and it tells
a user *why* accuracy dropped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from edgeslim.bench.accuracy import evaluate_model
from edgeslim.quant.fake_quant import fake_quantizers
from edgeslim.quant.primitives import sqnr_db
from edgeslim.quant.ptq import QuantizedModel


@dataclass(frozen=True)
class LayerSensitivity:
    layer: str
    top1: float | None  # accuracy with only this layer quantized
    drop: float | None  # float top-1 minus ``top1`` (fraction)
    sqnr_db: float  # logits SQNR against the float model


@contextlib.contextmanager
def only_layer(qm: QuantizedModel, layer: str | None) -> Iterator[None]:
    """Enable only ``layer``'s weight and input quantizers (``None``: none); restore after."""
    fqs = dict(fake_quantizers(qm.model))
    old = {n: fq.quantizing for n, fq in fqs.items()}
    keep = set()
    if layer is not None:
        keep = {f"{layer}.weight_fq", qm.input_quantizer_of.get(layer, "")}
    try:
        for n, fq in fqs.items():
            fq.quantizing = old[n] and n in keep
        yield
    finally:
        for n, fq in fqs.items():
            fq.quantizing = old[n]


def layer_sensitivity(
    qm: QuantizedModel,
    sqnr_batch: torch.Tensor,
    loader=None,
    progress: bool = True,
) -> list[LayerSensitivity]:
    """Sensitivity of every quantized layer of ``qm``, most damaging first.

    Args:
        qm: a calibrated :class:`QuantizedModel`.
        sqnr_batch: inputs on which the logits SQNR is measured.
        loader: labelled data for top-1 (None: SQNR only).
        progress: show a progress bar over layers.

    Example:
        >>> # rows = layer_sensitivity(quantize_ptq(m, calib), next(iter(loader))[0], loader)
    """
    with torch.no_grad(), only_layer(qm, None):
        ref = qm.model(sqnr_batch)
    base = evaluate_model(qm.float_model, loader)["top1"] if loader is not None else None
    rows = []
    for layer in tqdm(qm.layers(), desc="sensitivity", disable=not progress):
        with only_layer(qm, layer), torch.no_grad():
            s = sqnr_db(ref, qm.model(sqnr_batch))
            top1 = evaluate_model(qm.model, loader)["top1"] if loader is not None else None
        drop = base - top1 if base is not None and top1 is not None else None
        rows.append(LayerSensitivity(layer, top1, drop, s))
    rows.sort(key=lambda r: (-(r.drop or 0.0), r.sqnr_db))
    return rows


@contextlib.contextmanager
def only_weights_of(model: torch.nn.Module, layer: str | None) -> Iterator[None]:
    """Enable only ``layer``'s weight quantizer (``None``: no quantizer at all); restore after.

    Unlike :func:`only_layer` this needs no :class:`QuantizedModel`, so it works on any
    fake-quantized module, e.g. one a recipe's ``quantize`` stage returns.
    """
    fqs = dict(fake_quantizers(model))
    old = {n: fq.quantizing for n, fq in fqs.items()}
    try:
        for n, fq in fqs.items():
            fq.quantizing = old[n] and layer is not None and n == f"{layer}.weight_fq"
        yield
    finally:
        for n, fq in fqs.items():
            fq.quantizing = old[n]


def weight_drops(
    model: torch.nn.Module, layers: list[str], score: Callable[[torch.nn.Module], float]
) -> dict[str, float]:
    """Per layer: ``score`` with every quantizer off minus ``score`` with only its weights on.

    ``score`` returns the task's primary metric (higher is better) of a model; the result
    is in the metric's units (a fraction for top-1).

    Example:
        >>> # weight_drops(qmodel, ["conv1", "fc"], lambda m: evaluate_model(m, val)["top1"])
    """
    with only_weights_of(model, None):
        base = score(model)
    out = {}
    for layer in layers:
        with only_weights_of(model, layer):
            out[layer] = base - score(model)
    return out


def to_markdown(rows: list[LayerSensitivity]) -> str:
    lines = ["| layer | top-1 (%) | drop (points) | logits SQNR (dB) |", "|---|---:|---:|---:|"]
    for r in rows:
        t = f"{100 * r.top1:.2f}" if r.top1 is not None else "-"
        d = f"{100 * r.drop:+.2f}" if r.drop is not None else "-"
        lines.append(f"| {r.layer} | {t} | {d} | {r.sqnr_db:.1f} |")
    return "\n".join(lines) + "\n"


def to_json(rows: list[LayerSensitivity]) -> list[dict]:
    return [asdict(r) for r in rows]


def plot(rows: list[LayerSensitivity], path: str | Path, title: str = "") -> Path:
    """Bar chart: SQNR per layer (and top-1 drop when measured), in network order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.layer for r in rows]
    has_drop = any(r.drop is not None for r in rows)
    fig, axes = plt.subplots(
        2 if has_drop else 1, 1, figsize=(max(6, 0.35 * len(rows)), 7), squeeze=False
    )
    axes[0][0].bar(names, [r.sqnr_db for r in rows], color="tab:blue")
    axes[0][0].set_ylabel("logits SQNR (dB)")
    axes[0][0].set_title(title or "per-layer quantization sensitivity")
    if has_drop:
        axes[1][0].bar(names, [100 * (r.drop or 0) for r in rows], color="tab:red")
        axes[1][0].set_ylabel("top-1 drop (points)")
    for ax in axes[:, 0]:
        ax.tick_params(axis="x", rotation=90, labelsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
