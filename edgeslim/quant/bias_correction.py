"""Empirical per-channel bias correction.

Nagel, van Baalen, Blankevoort, Welling, "Data-Free Quantization Through Weight
Equalization and Bias Correction", ICCV 2019 (arXiv:1906.04721), Section 4.2:
quantization error shifts each output channel's mean, ``E[W~x] - E[Wx]``, and
the shift accumulates through the network. Subtracting it from the bias removes
it. The empirical variant measures both means on calibration data, layer by
layer in execution order, so each correction sees the already-corrected layers
before it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from tqdm import tqdm

from edgeslim.core.modes import eval_mode
from edgeslim.quant.fake_quant import _QuantWeight


def _channel_mean(y: Tensor) -> Tensor:
    """Mean over every dim but the channel one (dim 1 for conv, last for linear)."""
    if y.dim() == 2:
        return y.mean(0)
    if y.dim() == 3:  # (batch, tokens, features)
        return y.mean((0, 1))
    return y.transpose(0, 1).reshape(y.shape[1], -1).mean(1)


def _means(model: nn.Module, names: list[str], batches: list[Tensor]) -> dict[str, Tensor]:
    sums: dict[str, Tensor] = {}
    hooks = []
    for n in names:

        def hook(mod, inp, out, n=n):
            m = _channel_mean(out.detach().float())
            sums[n] = sums.get(n, 0) + m

        hooks.append(model.get_submodule(n).register_forward_hook(hook))
    try:
        with torch.no_grad(), eval_mode(model):
            for x in batches:
                model(x)
    finally:
        for h in hooks:
            h.remove()
    return {n: s / len(batches) for n, s in sums.items()}


def bias_correct_(
    qmodel: nn.Module,
    float_model: nn.Module,
    batches: Iterable[Tensor],
    progress: bool = True,
    names: list[str] | None = None,
) -> dict[str, float]:
    """Correct the bias of every quantized layer of ``qmodel`` in place.

    ``float_model`` must have the same layer names (the BN-folded reference).
    ``names`` lists the layers to correct (default: every fake-quant layer with a
    weight quantizer; a weight coding passes the layers it rewrote).
    Returns ``{layer: max |correction|}``.

    Example:
        >>> # bias_correct_(qm.model, qm.float_model, [x for x, _ in loader][:4])
    """
    batches = list(batches)
    if names is None:
        names = [
            n for n, m in qmodel.named_modules() if isinstance(m, _QuantWeight) and m.weight_fq
        ]
    ref = _means(float_model, names, batches)
    shifts = {}
    for n in tqdm(names, desc="bias correction", leave=False, disable=not progress):
        got = _means(qmodel, [n], batches)[n]
        delta = ref[n] - got
        layer = qmodel.get_submodule(n)
        with torch.no_grad():
            if layer.bias is None:
                layer.bias = nn.Parameter(torch.zeros_like(delta))
            layer.bias.add_(delta.to(layer.bias.dtype))
        shifts[n] = float(delta.abs().max())
    return shifts
