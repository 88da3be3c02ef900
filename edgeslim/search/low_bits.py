"""Bit-width as a search decision: which quantized layers could take fewer weight bits.

HAWQ-V3 (Yao et al., ICML 2021) picks 4 or 8 weight bits per layer by an integer
program over each layer's damage and cost. The search stage joins that choice to
its channel-ratio MILP: every candidate layer gets one more switch, "weights at
``bits``", whose damage is *measured* like the float-fallback one (only that
layer quantized, on the sensitivity batches; the same layer at 8 bits is the
reference, so the activations' 8-bit error cancels) and whose latency and size
are measured on the deployed file (:meth:`~edgeslim.search.deploy.Deployment.export`
writes the layer's weights packed as INT4). Measured damage replaces HAWQ's
``tr(H) / n * ||Q(W) - W||^2`` estimate here because the ratios' damage is measured
too: one scale for both kinds of decision.

ONNX Runtime has no INT4 convolution kernel on CPU, so a 4-bit conv runs as a
float conv on dequantized weights: its switch usually costs latency and saves
size, and the MILP only takes it under a size budget (or when the layer is
cheap). The candidates are the ``limit`` quantized layers with the most weights:
they hold the size.
"""

from __future__ import annotations

from dataclasses import replace

from torch import nn
from tqdm import tqdm

from edgeslim.search.deploy import Deployment


def low_bit_rows(
    work: nn.Module,
    batches: list,
    calib: list,
    deploy: Deployment,
    bits: int,
    limit: int,
    damage,
    drop,
    progress: bool = False,
) -> list[dict]:
    """One row per candidate layer: ``loss`` (nats) and ``top1_drop_pts`` added by ``bits``.

    ``damage(model, batches) -> (loss, metric)`` and ``drop(before, after)`` are the
    search's own measures (:mod:`edgeslim.search.candidates`).
    """
    from edgeslim.quant.ptq import quantize_ptq
    from edgeslim.quant.sensitivity import only_layer

    base = replace(deploy.ptq, calib_batches=len(calib), bias_correction=False)
    if base.weight is None or limit <= 0:
        return []
    low = replace(base, weight=base.weight.with_(bits=bits))
    q8 = quantize_ptq(work, calib, base, progress=False)
    qlow = quantize_ptq(work, calib, low, progress=False)
    sizes = {n: work.get_submodule(n).weight.numel() for n in q8.layers()}
    layers = sorted(sizes, key=lambda n: -sizes[n])[:limit]
    rows = []
    for layer in tqdm(layers, desc=f"search: {bits}-bit sensitivity", disable=not progress):
        with only_layer(q8, layer):
            l8, t8 = damage(q8.model, batches)
        with only_layer(qlow, layer):
            lo, t1 = damage(qlow.model, batches)
        rows.append(
            {
                "layer": layer,
                "bits": bits,
                "params": sizes[layer],
                "loss": lo - l8,
                "top1_drop_pts": 100 * drop(t8, t1),
            }
        )
    return rows
