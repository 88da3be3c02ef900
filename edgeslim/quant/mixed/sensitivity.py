"""HAWQ-V3 layer sensitivity: ``Omega(l, b) = tr(H_l) / n_l * ||Q_b(W_l) - W_l||^2``.

Yao et al., "HAWQ-V3: Dyadic Neural Network Quantization", ICML 2021
(arXiv:2011.10680), Section 3.4 (following HAWQ-V2, Dong et al. 2020): the
second-order loss change of quantizing layer ``l`` to ``b`` bits is modelled by
the average Hessian eigenvalue ``tr(H_l) / n_l`` times the squared weight
perturbation. ``Q_b`` is edgeslim's weight quantizer: signed, symmetric,
narrow-range, per output channel (axis 0), min-max scale. Keeping a layer in
float (:data:`FLOAT_BITS`) perturbs nothing: ``Omega = 0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from edgeslim.core.errors import EdgeslimError
from edgeslim.quant.primitives import choose_qparams, fake_quantize, qrange

FLOAT_BITS = 32  # the "stay in float" choice: fp32 weights, no perturbation


def quantize_weight(w: Tensor, bits: int) -> Tensor:
    """Per-output-channel symmetric narrow-range fake-quantization of ``w`` (axis 0).

    Example:
        >>> import torch
        >>> quantize_weight(torch.tensor([[0.5, -1.0], [0.2, 0.1]]), 2)
        tensor([[ 0.0000, -1.0000],
                [ 0.2000,  0.0000]])
    """
    if bits == FLOAT_BITS:
        return w
    qmin, qmax = qrange(bits, signed=True, narrow=True)
    flat = w.detach().reshape(w.shape[0], -1)
    scale, zero = choose_qparams(flat.amin(1), flat.amax(1), qmin, qmax, symmetric=True)
    return fake_quantize(w.detach(), scale, zero, qmin, qmax, axis=0)


def omega(trace: float, w: Tensor, bits: int) -> float:
    """``trace / numel(w) * ||Q_bits(w) - w||^2`` (0 for :data:`FLOAT_BITS`)."""
    if bits == FLOAT_BITS:
        return 0.0
    err = float((quantize_weight(w, bits).double() - w.detach().double()).pow(2).sum())
    return trace / w.numel() * err


def sensitivities(
    weights: Mapping[str, Tensor],
    traces: Mapping[str, float],
    choices: Sequence[int] = (4, 8, FLOAT_BITS),
) -> dict[str, dict[int, float]]:
    """``Omega`` of every layer at every bit-width choice.

    A negative trace (a model away from a minimum, or probe noise) is clamped to
    0: a negative ``Omega`` would tell the integer program that quantizing a
    layer *lowers* the loss, and it would pick the fewest bits on noise. The raw
    estimate and its interval stay in the record, so the user sees it.
    """
    missing = sorted(set(weights) - set(traces))
    if missing:
        raise EdgeslimError(f"no Hessian trace for layers {missing}")
    return {
        name: {b: omega(max(traces[name], 0.0), w, b) for b in choices}
        for name, w in weights.items()
    }
