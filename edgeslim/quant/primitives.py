"""Affine (uniform) quantization math: pure functions on tensors, no modules, no state.

Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018 (arXiv:1712.05877), eq. (1):
``r = S (q - Z)``. A real value ``r`` is stored as an integer ``q`` in
``[qmin, qmax]`` with a float scale ``S`` and an integer zero-point ``Z`` chosen
so that real 0 is exactly representable (zero padding and ReLU stay exact).

Rounding is round-half-to-even, like ONNX ``QuantizeLinear``, so that the
simulation and ONNX Runtime agree bit for bit on the grid. Granularity is
per-tensor (``axis=None``), per-channel (``axis=k``) or per-group (see
:func:`group_view`). ``qmin``/``qmax`` may be tensors, which is how per-channel
bit widths (Banner et al. 2019 bit allocation) are expressed.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from edgeslim.core.errors import EdgeslimError

TensorOrInt = Tensor | int


def qrange(bits: int, signed: bool, narrow: bool = False) -> tuple[int, int]:
    """Integer range of a ``bits``-bit type; ``narrow`` drops the most negative code.

    Example:
        >>> qrange(8, True), qrange(8, False), qrange(4, True, narrow=True)
        ((-128, 127), (0, 255), (-7, 7))
    """
    if not 2 <= bits <= 16:
        raise EdgeslimError(f"bit width must be in 2..16, got {bits}")
    if signed:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return (lo + 1 if narrow else lo), hi
    return 0, 2**bits - 1 - (1 if narrow else 0)


def _bshape(t: Tensor, ndim: int, axis: int | None) -> Tensor:
    """Reshape a per-channel vector so it broadcasts along ``axis`` of an ``ndim`` tensor."""
    if axis is None or t.dim() == 0:
        return t
    shape = [1] * ndim
    shape[axis] = -1
    return t.reshape(shape)


def choose_qparams(
    lo: Tensor,
    hi: Tensor,
    qmin: TensorOrInt,
    qmax: TensorOrInt,
    *,
    symmetric: bool,
    pow2: bool = False,
    eps: float = 1e-12,
) -> tuple[Tensor, Tensor]:
    """Scale and zero-point that map the real range ``[lo, hi]`` onto ``[qmin, qmax]``.

    The range is widened to include 0 first. Symmetric ranges use ``Z = 0`` for a
    signed grid (or ``Z = qmin`` for an unsigned grid of a non-negative range) and
    ``S = max(|lo|, |hi|) / ((qmax - qmin) / 2)``; asymmetric ranges use
    ``S = (hi - lo) / (qmax - qmin)`` and ``Z = qmin - round(lo / S)``. With ``pow2`` the
    scale is rounded *up* to a power of two (so the range is never clipped further).

    Example:
        >>> s, z = choose_qparams(torch.tensor(-1.0), torch.tensor(3.0), 0, 255, symmetric=False)
        >>> round(float(s), 6), int(z)
        (0.015686, 64)
    """
    lo = torch.clamp(torch.as_tensor(lo, dtype=torch.float32), max=0.0)
    hi = torch.clamp(torch.as_tensor(hi, dtype=torch.float32), min=0.0)
    qmin_t = torch.as_tensor(qmin, dtype=torch.float32)
    qmax_t = torch.as_tensor(qmax, dtype=torch.float32)
    if symmetric:
        amax = torch.maximum(-lo, hi)
        if bool((qmin_t < 0).all()):
            scale = amax / ((qmax_t - qmin_t) / 2)
            zero = torch.zeros_like(scale)
        else:  # unsigned grid, symmetric request: only valid for non-negative data
            scale = amax / (qmax_t - qmin_t)
            zero = qmin_t.expand_as(scale).clone()
    else:
        scale = (hi - lo) / (qmax_t - qmin_t)
        zero = None
    scale = torch.clamp(scale, min=eps)
    if pow2:
        scale = torch.exp2(torch.ceil(torch.log2(scale)))
    if zero is None:
        zero = torch.clamp(qmin_t - torch.round(lo / scale), qmin_t, qmax_t)
    return scale.float(), zero.round().to(torch.int32)


def quantize(
    x: Tensor,
    scale: Tensor,
    zero_point: Tensor,
    qmin: TensorOrInt,
    qmax: TensorOrInt,
    axis: int | None = None,
) -> Tensor:
    """``clamp(round_half_even(x / S) + Z, qmin, qmax)`` as an integer-valued float tensor.

    Example:
        >>> quantize(torch.tensor([0.26, -9.0]), torch.tensor(0.1), torch.tensor(0), -8, 7)
        tensor([ 3., -8.])
    """
    s = _bshape(scale, x.dim(), axis)
    z = _bshape(zero_point, x.dim(), axis).to(x.dtype)
    lo = _bshape(torch.as_tensor(qmin, dtype=x.dtype), x.dim(), axis)
    hi = _bshape(torch.as_tensor(qmax, dtype=x.dtype), x.dim(), axis)
    return torch.clamp(torch.round(x / s) + z, lo, hi)


def dequantize(q: Tensor, scale: Tensor, zero_point: Tensor, axis: int | None = None) -> Tensor:
    """``S (q - Z)``.

    Example:
        >>> dequantize(torch.tensor([3.0, -8.0]), torch.tensor(0.1), torch.tensor(0))
        tensor([ 0.3000, -0.8000])
    """
    s = _bshape(scale, q.dim(), axis)
    z = _bshape(zero_point, q.dim(), axis).to(q.dtype)
    return (q - z) * s


def fake_quantize(
    x: Tensor,
    scale: Tensor,
    zero_point: Tensor,
    qmin: TensorOrInt,
    qmax: TensorOrInt,
    axis: int | None = None,
) -> Tensor:
    """Quantize then dequantize (the value the integer kernel will actually see)."""
    return dequantize(quantize(x, scale, zero_point, qmin, qmax, axis), scale, zero_point, axis)


def group_view(w: Tensor, group_size: int, axis: int = 1) -> Tensor:
    """View ``w`` as ``(rows, groups, group_size)`` with groups along ``axis``.

    Per-group quantization is per-channel quantization of this view along dim 0-1
    flattened: call :func:`choose_qparams` on ``amin/amax(-1)`` and broadcast.

    Example:
        >>> group_view(torch.zeros(4, 8), 4).shape
        torch.Size([4, 2, 4])
    """
    w = w.movedim(axis, -1)
    n = w.shape[-1]
    if n % group_size:
        raise EdgeslimError(f"dimension {n} is not divisible by group size {group_size}")
    return w.reshape(-1, n // group_size, group_size)


def fake_quantize_groups(
    w: Tensor, group_size: int, qmin: int, qmax: int, *, symmetric: bool, axis: int = 1
) -> Tensor:
    """Min-max fake-quantization of ``w`` in groups of ``group_size`` along ``axis``."""
    g = group_view(w, group_size, axis)
    scale, zero = choose_qparams(g.amin(-1), g.amax(-1), qmin, qmax, symmetric=symmetric)
    q = torch.clamp(torch.round(g / scale[..., None]) + zero[..., None], qmin, qmax)
    out = (q - zero[..., None]) * scale[..., None]
    moved = w.movedim(axis, -1)
    return out.reshape(moved.shape).movedim(-1, axis)


def sqnr_db(ref: Tensor, approx: Tensor) -> float:
    """Signal-to-quantization-noise ratio ``10 log10(|ref|^2 / |ref - approx|^2)`` in dB."""
    noise = float((ref.double() - approx.double()).pow(2).sum())
    signal = float(ref.double().pow(2).sum())
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(max(signal, 1e-30) / noise)


def fake_quantize_ste(
    x: Tensor,
    scale: Tensor,
    zero_point: Tensor,
    qmin: TensorOrInt,
    qmax: TensorOrInt,
    axis: int | None = None,
) -> Tensor:
    """:func:`fake_quantize` with straight-through gradients, for training through it.

    The value is exactly :func:`fake_quantize`'s. Rounding passes its gradient
    straight through (Bengio et al., arXiv:1308.3432); clamped values pass none.
    The gradient reaching ``scale`` is the one of LSQ (Esser et al., "Learned Step
    Size Quantization", ICLR 2020, eq. 3, without its gradient scale):
    ``round(x/s) - x/s`` inside the grid, the clamp bound outside it.

    Example:
        >>> x = torch.tensor([0.26, -9.0], requires_grad=True)
        >>> s = torch.tensor(0.1, requires_grad=True)
        >>> y = fake_quantize_ste(x, s, torch.tensor(0), -8, 7)
        >>> y.sum().backward(); x.grad.tolist()
        [1.0, 0.0]
    """
    s = _bshape(scale, x.dim(), axis)
    z = _bshape(zero_point, x.dim(), axis).to(x.dtype)
    lo = _bshape(torch.as_tensor(qmin, dtype=x.dtype), x.dim(), axis)
    hi = _bshape(torch.as_tensor(qmax, dtype=x.dtype), x.dim(), axis)
    v = x / s
    q = torch.clamp(v + (torch.round(v) - v).detach() + z, lo, hi)
    return (q - z) * s
