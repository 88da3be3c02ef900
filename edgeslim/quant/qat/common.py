"""What every QAT method shares: the config fields, the quantizer base, STE helpers, grids.

A QAT method is a frozen config (a :class:`QATConfig`) plus a quantizer module
(:class:`Quantizer`) for weights and one for activations; the handler
(:mod:`edgeslim.quant.qat.handler`) swaps conv/linear layers for QAT twins
(:mod:`edgeslim.quant.qat.layers`) that pass their weight and their input
through those quantizers.

A quantizer whose output is ``S (clamp(round(x / S) + Z) - Z)`` of its input is
*affine* (STE, LSQ, PACT): its :meth:`Quantizer.grid` is that ``(S, Z, qmin,
qmax)``, and an 8-bit one exports as ONNX ``QuantizeLinear/DequantizeLinear``.
The others (DoReFa's tanh, DSQ's soft steps, binary, ternary) are a different
function of their input; their :meth:`Quantizer.grid` is the integer grid their
*outputs* lie on, which is what :func:`edgeslim.quant.qat.export.harden_` stores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgeslim.core.cpu import int8_pairs_saturate
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import MethodConfig
from edgeslim.core.select import compile_pattern, matches


@dataclass(frozen=True)
class QATConfig(MethodConfig):
    """Fields every QAT method has; each method subclasses it (frozen) and adds its own.

    Args:
        w_bits: weight bits (2..8; binary and ternary ignore it).
        a_bits: activation bits (2..8); ``None`` keeps activations in float.
        fold_bn: fold each conv's BatchNorm into it *in simulation*: the weight
            quantizer sees ``W * gamma / sigma`` (Jacob et al. 2018, Section 3.2).
            None (default): fold above 2 weight bits; at 2 bits BatchNorm stays a
            layer, whose training statistics are the quantized conv's. Folded, 2-bit
            weights shrink every conv's output while the folded scale and shift keep
            the float conv's statistics, and W2A2 ResNet-20 fell to chance
            (``benchmarks/results/qat_intel_amx/qat.md``). Stored once decided.
        freeze_bn_epoch: from this epoch on, BN uses its running statistics and
            stops updating them (Krishnamoorthi 2018, Section 3.3); None: never.
        freeze_observer_epoch: from this epoch on, observed ranges (STE) stop
            following the data; None: never.
        calib_batches: batches used to initialise the quantizers.
        exclude: names or regexes of layers kept in float (e.g. the head).
        reduce_range: code 8-bit weights in 7 bits (``w_bits`` becomes 7), as PTQ does
            on x86 CPUs without VNNI, whose u8 x s8 kernels saturate full-range int8
            weights (:func:`edgeslim.core.cpu.int8_pairs_saturate`). None: decided on
            this CPU and stored, so a saved model replays the same choice anywhere.
    """

    w_bits: int = 4
    a_bits: int | None = 4
    fold_bn: bool | None = None
    freeze_bn_epoch: int | None = None
    freeze_observer_epoch: int | None = None
    calib_batches: int = 4
    exclude: tuple[str, ...] = ()
    reduce_range: bool | None = None

    def __post_init__(self) -> None:
        if self.reduce_range is None:
            object.__setattr__(self, "reduce_range", int8_pairs_saturate())
        if self.reduce_range and self.w_bits == 8:
            object.__setattr__(self, "w_bits", 7)
        if self.fold_bn is None:
            object.__setattr__(self, "fold_bn", self.w_bits > 2)
        for bits in (self.w_bits, self.a_bits):
            if bits is not None and not 2 <= bits <= 8:
                raise EdgeslimError(f"QAT bit widths are 2..8, got {bits}")
        if self.calib_batches < 1:
            raise EdgeslimError(f"calib_batches must be >= 1, got {self.calib_batches}")
        for epoch in (self.freeze_bn_epoch, self.freeze_observer_epoch):
            if epoch is not None and epoch < 0:
                raise EdgeslimError(f"freeze epochs are >= 0, got {epoch}")
        for pattern in self.exclude:
            compile_pattern(pattern)

    def excluded(self, name: str) -> bool:
        return any(matches(name, p) for p in self.exclude)

    def weight_quantizer(self, layer: nn.Module) -> Quantizer:
        """The weight quantizer of ``layer`` (out channels on dim 0)."""
        raise NotImplementedError

    def activation_quantizer(self) -> Quantizer | None:
        """The quantizer of a layer's input (None: float activations)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Grid:
    """An integer grid ``S (q - Z)``, ``q`` in ``[qmin, qmax]``; per channel along dim 0 if S is."""

    scale: Tensor
    zero_point: Tensor
    qmin: int
    qmax: int


def bshape(t: Tensor, x: Tensor) -> Tensor:
    """A per-channel vector (dim 0 of ``x``) shaped to broadcast; scalars stay scalars."""
    if t.numel() == 1:
        return t.reshape(())
    return t.reshape([-1] + [1] * (x.dim() - 1))


def round_ste(x: Tensor) -> Tensor:
    """``round(x)`` (half to even, like ONNX) with gradient 1 (Bengio et al. 2013)."""
    return x + (torch.round(x) - x).detach()


def grad_scale(x: Tensor, g: float) -> Tensor:
    """``x`` in the forward pass, gradient times ``g`` in the backward (LSQ, Esser et al. 2020)."""
    return (x - x * g).detach() + x * g


def signed_range(bits: int, narrow: bool = False) -> tuple[int, int]:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return (lo + 1 if narrow else lo), hi


def unsigned_range(bits: int) -> tuple[int, int]:
    return 0, 2**bits - 1


class Quantizer(nn.Module):
    """Base of the QAT quantizers: calibrate, then simulate quantization in float.

    While :attr:`calibrating`, the forward pass records the input's range and mean
    magnitude and returns it unchanged; :meth:`init_` then sets the learned or
    fixed parameters from those statistics (each method as its paper says).
    ``signed`` (a buffer, so a reload keeps it) says whether the input has negative
    values: weights always, activations when calibration saw any.
    """

    affine: bool = True  # output = fake-quantize(input) on :meth:`grid`
    per_channel: bool = False
    # the output is on another scale than the input (DoReFa's tanh normalisation to
    # [-1, 1]): BatchNorm layers left unfolded after such weights hold stale statistics
    rescales: bool = False

    def __init__(self, bits: int, signed: bool | None = None) -> None:
        super().__init__()
        self.bits = bits
        # [signed, initialized]: a buffer so that a reload keeps them, mirrored in Python
        # attributes so that the forward pass reads no tensor (ONNX export, no syncs)
        self.register_buffer("flags", torch.tensor([int(bool(signed)), 0], dtype=torch.uint8))
        self._signed, self._initialized = bool(signed), False
        self.calibrating = False
        self._lo: Tensor | None = None
        self._hi: Tensor | None = None
        self._abs_sum, self._count = 0.0, 0

    @property
    def signed(self) -> bool:
        return self._signed

    @signed.setter
    def signed(self, value: bool) -> None:
        self._signed = bool(value)
        self.flags[0] = int(self._signed)

    @property
    def initialized(self) -> bool:
        return self._initialized

    @initialized.setter
    def initialized(self, value: bool) -> None:
        self._initialized = bool(value)
        self.flags[1] = int(self._initialized)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._signed, self._initialized = (bool(v) for v in self.flags.tolist())

    # -- calibration -------------------------------------------------------------------
    def observe(self, x: Tensor) -> None:
        x = x.detach()
        flat = x.reshape(x.shape[0], -1) if self.per_channel else x.reshape(1, -1)
        lo, hi = flat.amin(1), flat.amax(1)
        self._lo = lo if self._lo is None else torch.minimum(self._lo, lo)
        self._hi = hi if self._hi is None else torch.maximum(self._hi, hi)
        self._abs_sum += float(x.abs().sum())
        self._count += x.numel()

    def init_(self) -> None:
        """Set the parameters from what :meth:`observe` saw; calibration ends."""
        if self._lo is None:
            raise EdgeslimError(f"{type(self).__name__}: nothing was observed to initialise it")
        with torch.no_grad():
            self.signed = bool((self._lo < 0).any())
            self.init_from(self._lo, self._hi, self._abs_sum / max(self._count, 1))
            self.initialized = True
        self.calibrating = False
        self._lo = self._hi = None
        self._abs_sum, self._count = 0.0, 0

    def forget_(self) -> None:
        """Drop what :meth:`observe` saw (calibration starts again)."""
        self._lo = self._hi = None
        self._abs_sum, self._count = 0.0, 0

    def calibrate_on(self, x: Tensor) -> None:
        """Observe ``x`` and initialise at once (weights: the tensor is all there is)."""
        self.observe(x)
        self.init_()

    def init_from(self, lo: Tensor, hi: Tensor, mean_abs: float) -> None:
        """Method specific: parameters from the range ``[lo, hi]`` and ``E|x|``."""
        raise NotImplementedError

    # -- simulation ----------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        if self.calibrating:
            self.observe(x)
            return x
        if not bool(self.initialized):
            raise EdgeslimError(f"{type(self).__name__} used before calibration")
        return self.quantize(x)

    def quantize(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def qrange(self) -> tuple[int, int]:
        return signed_range(self.bits) if bool(self.signed) else unsigned_range(self.bits)

    def grid(self, x: Tensor | None = None) -> Grid | None:
        """The integer grid of the output (``x``: the weight, for weight-dependent grids)."""
        raise NotImplementedError

    def freeze_observer_(self) -> None:
        """Stop following the data (methods with moving ranges override it)."""

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={bool(self.signed)}"


class FixedQuantizer(Quantizer):
    """Straight-through fake-quantization on a fixed :class:`Grid` (what hardening leaves)."""

    def __init__(self, grid: Grid, bits: int = 8) -> None:
        super().__init__(bits, signed=grid.qmin < 0)
        self.per_channel = grid.scale.numel() > 1
        self.register_buffer("scale", grid.scale.detach().float().clone())
        self.register_buffer("zero_point", grid.zero_point.detach().float().clone())
        self.qmin, self.qmax = grid.qmin, grid.qmax
        self.initialized = True

    def quantize(self, x: Tensor) -> Tensor:
        s, z = bshape(self.scale, x), bshape(self.zero_point, x)
        q = torch.clamp(round_ste(x / s) + z, self.qmin, self.qmax)
        return (q - z) * s

    def grid(self, x: Tensor | None = None) -> Grid:
        return Grid(self.scale, self.zero_point, self.qmin, self.qmax)

    def extra_repr(self) -> str:
        return f"fixed [{self.qmin}, {self.qmax}]"


def lsq_grad_scale(n: int, qp: int) -> float:
    """LSQ's step-size gradient scale ``g = 1 / sqrt(N * Qp)`` (Esser et al. 2020, Section 2.2)."""
    return 1.0 / math.sqrt(max(n, 1) * max(qp, 1))
