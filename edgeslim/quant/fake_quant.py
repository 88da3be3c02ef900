"""Fake-quantization modules: observe, then quantize-dequantize in float.

Jacob et al. 2018, Section 3: the simulated value ``S (clamp(round(x/S) + Z) - Z)``
is exactly what an integer kernel sees, so accuracy measured on the simulation
is the deployed accuracy. :class:`FakeQuantize` holds an observer and the frozen
``scale`` / ``zero_point`` in buffers (a checkpoint is complete);
:class:`QuantConv2d` / :class:`QuantLinear` are drop-in subclasses of the torch
layers (same parameter names) whose weights pass through a weight quantizer.

After calibration a layer's bias is simulated as the int32 codes at
``s_x * s_w`` that the integer kernel adds to its accumulator; a float bias
here would shift every output channel by up to half a code of ``s_x * s_w``
against ONNX Runtime, and the one-code rounding flips this causes compound
through a deep network.

Per-tensor 8-bit activations run through ``torch.fake_quantize_per_tensor_affine``,
which the ONNX exporter lowers to ``QuantizeLinear -> DequantizeLinear``: the
quantization points of the simulation and of the deployed graph are the same
nodes by construction.

A fake-quant model keeps training: rounding passes gradients straight through
(:func:`~edgeslim.quant.primitives.fake_quantize_ste`), and :func:`learn_scales_`
turns the scales into parameters (LSQ, Esser et al. 2020). Everything a reload
needs is in the ``state_dict``: scales, zero points, per-channel bit ranges and
each quantizer's mode (``fq_mode``: observing, quantizing).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeslim.quant.config import QuantSpec
from edgeslim.quant.observers import make_observer
from edgeslim.quant.observers.base import resize_buffers
from edgeslim.quant.primitives import (
    choose_qparams,
    fake_quantize_groups,
    fake_quantize_ste,
)

ONNX_RANGES = ((0, 255), (-128, 127))


class FakeQuantize(nn.Module):
    """Observer + frozen qparams for one tensor.

    Modes: ``observing`` (statistics are collected, output is the input) and
    ``quantizing`` (output is fake-quantized). :meth:`freeze` turns statistics
    into qparams and switches from the first mode to the second.

    Example:
        >>> from edgeslim.quant.config import activation_spec
        >>> fq = FakeQuantize(activation_spec())
        >>> _ = fq(torch.linspace(0, 2.55, 100)); fq.freeze()
        >>> float(fq(torch.tensor([1.004])))
        1.0
    """

    def __init__(self, spec: QuantSpec, ch_axis: int | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.ch_axis = ch_axis if spec.granularity == "channel" else None
        self.observer = make_observer(spec.observer, self.ch_axis, **dict(spec.observer_args))
        qmin, qmax = spec.qrange()
        self.register_buffer("scale", torch.ones(1))
        self.register_buffer("zero_point", torch.zeros(1, dtype=torch.int32))
        self.register_buffer("qmin", torch.tensor(qmin, dtype=torch.float32))
        self.register_buffer("qmax", torch.tensor(qmax, dtype=torch.float32))
        self.register_buffer("fq_mode", torch.tensor([1, 0], dtype=torch.uint8))
        self._observing, self._quantizing = True, False
        # python ints (not tensors) so that export never reads a tensor value
        self.per_tensor_int_range: tuple[int, int] | None = (
            (qmin, qmax) if self.ch_axis is None and spec.granularity == "tensor" else None
        )
        self._scalar_qparams: tuple[float, int] | None = None  # cache of the buffers

    # the mode lives in Python attributes (export must not read tensors) mirrored in
    # the ``fq_mode`` buffer, so that a saved model reloads in the same mode
    @property
    def observing(self) -> bool:
        return self._observing

    @observing.setter
    def observing(self, value: bool) -> None:
        self._observing = bool(value)
        self.fq_mode[0] = int(value)

    @property
    def quantizing(self) -> bool:
        return self._quantizing

    @quantizing.setter
    def quantizing(self, value: bool) -> None:
        self._quantizing = bool(value)
        self.fq_mode[1] = int(value)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        resize_buffers(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._observing, self._quantizing = (bool(v) for v in self.fq_mode.tolist())
        if self.qmax.numel() > 1:  # per-channel bit widths (bit allocation)
            self.per_tensor_int_range = None
        self._cache_scalars()

    def _cache_scalars(self) -> None:
        """Python copies of per-tensor qparams: export must not read tensor values."""
        if self.per_tensor_int_range is not None and self.scale.numel() == 1:
            self._scalar_qparams = (float(self.scale.detach()), int(self.zero_point))
        else:
            self._scalar_qparams = None

    def train(self, mode: bool = True) -> FakeQuantize:
        super().train(mode)
        self._cache_scalars()  # scales may have been trained
        return self

    @property
    def learning(self) -> bool:
        """True when ``scale`` is a trainable parameter (see :meth:`learn_scale_`)."""
        return isinstance(self.scale, nn.Parameter)

    def learn_scale_(self, learn: bool = True) -> None:
        """Make ``scale`` a trainable ``nn.Parameter`` (or a buffer again); same state_dict key."""
        if learn == self.learning:
            return
        value = self.scale.detach().clone()
        if learn:
            del self._buffers["scale"]
            self.scale = nn.Parameter(value)
        else:
            del self._parameters["scale"]
            self.register_buffer("scale", value)

    def _set_qparams(self, scale: Tensor, zero_point: Tensor) -> None:
        if self.learning:
            with torch.no_grad():
                self.scale.data = scale.detach().clone()
        else:
            self.scale = scale
        self.zero_point = zero_point

    def set_bits(self, bits: Tensor) -> None:
        """Per-channel bit widths (signed symmetric narrow grids), e.g. from bit allocation."""
        self.qmax = (2 ** (bits.float() - 1) - 1).float()
        self.qmin = -self.qmax
        self.per_tensor_int_range = None

    def freeze(self) -> None:
        """Compute ``scale`` / ``zero_point`` from the observed statistics."""
        if self.spec.granularity == "group":
            self.observing, self.quantizing = False, True
            return
        if not self.observer.observed:
            raise RuntimeError("FakeQuantize.freeze() before anything was observed")
        qmin, qmax = int(self.qmin.min()), int(self.qmax.max())
        lo, hi = self.observer.range(qmin, qmax, self.spec.symmetric)
        self._set_qparams(
            *choose_qparams(
                lo,
                hi,
                self.qmin,
                self.qmax,
                symmetric=self.spec.symmetric,
                pow2=self.spec.pow2_scale,
            )
        )
        self._cache_scalars()
        self.observing, self.quantizing = False, True

    def forward(self, x: Tensor) -> Tensor:
        if self.observing:
            self.observer(x)
        if not self.quantizing:
            return x
        if self.spec.granularity == "group":
            qmin, qmax = self.spec.qrange()
            q = fake_quantize_groups(
                x, self.spec.group_size, qmin, qmax, symmetric=self.spec.symmetric
            )
            return x + (q - x).detach()  # straight-through gradient
        rng = self.per_tensor_int_range
        if rng is not None and not (self.learning and self.training):
            # scalar qparams: the exporter lowers this overload to QuantizeLinear/DequantizeLinear
            if self._scalar_qparams is None or not torch.compiler.is_compiling():
                self._cache_scalars()  # eager: always the current (maybe trained) scale
            s, z = self._scalar_qparams
            return torch.fake_quantize_per_tensor_affine(x, s, z, rng[0], rng[1])
        scale = self.scale
        if self.learning and self.training:
            # LSQ's gradient scale 1/sqrt(N * Qp): the step-size gradient sums over the
            # N values sharing a scale, and would otherwise swamp the weights' updates
            n = x.numel() // (x.shape[self.ch_axis] if self.ch_axis is not None else 1)
            g = 1.0 / math.sqrt(max(n, 1) * max(self.spec.qrange()[1], 1))
            scale = (scale - scale * g).detach() + scale * g
        return fake_quantize_ste(x, scale, self.zero_point, self.qmin, self.qmax, self.ch_axis)

    def extra_repr(self) -> str:
        return f"bits={self.spec.bits}, {self.spec.granularity}, observer={self.spec.observer}"


def bias_scale(input_scale: Tensor, weight_scale: Tensor) -> Tensor:
    """Scale of the int32 bias, ``s_x * s_w`` per output channel.

    The product is taken in float64 and rounded once to float32, which is what the
    QDQ writer stores next to the int32 codes (:mod:`edgeslim.quant.qdq`).
    """
    return (input_scale.detach().double().reshape(()) * weight_scale.detach().double()).float()


def quantize_bias(bias: Tensor, scale: Tensor) -> Tensor:
    """``bias`` as an integer kernel adds it: int32 codes at ``scale`` (straight-through grad).

    Integer runtimes add the bias to the int32 accumulator, so it is rounded to a
    multiple of ``s_x * s_w`` (ONNX ``QLinearConv``; ONNX Runtime quantizes a float
    bias the same way when it fuses a QDQ conv).
    """
    return bias + (bias_codes(bias, scale).float() * scale - bias).detach()


def bias_codes(bias: Tensor, scale: Tensor) -> Tensor:
    """int32 bias codes ``round(bias / scale)`` (float64 division), as a float64 tensor."""
    return torch.clamp(torch.round(bias.detach().double() / scale.double()), -(2**31), 2**31 - 1)


class _QuantWeight:
    """Mixin: a layer whose weight goes through ``weight_fq`` (and input through ``input_fq``).

    Once calibration knows the scale of the layer's input, ``bias_scale`` (a buffer,
    empty until then) holds ``s_x * s_w`` and the bias is simulated as int32 codes.
    """

    weight_fq: FakeQuantize | None
    input_fq: FakeQuantize | None
    float_weight: bool
    bias_scale: Tensor

    def _init_quant(self, wspec: QuantSpec | None, aspec: QuantSpec | None) -> None:
        self.weight_fq = FakeQuantize(wspec, ch_axis=0) if wspec is not None else None
        self.input_fq = FakeQuantize(aspec) if aspec is not None else None
        self.float_weight = False  # set by the QDQ writer: it stores the integer weights itself
        self.register_buffer("bias_scale", torch.empty(0))
        if self.weight_fq is not None:
            self.weight_fq(self.weight)  # weights are known now: calibrate immediately
            self.weight_fq.freeze()

    def set_bias_scale(self, input_scale: Tensor) -> None:
        """Quantize the bias to int32 at ``input_scale * s_w`` from now on (per-tensor input)."""
        fq = self.weight_fq
        if self.bias is None or fq is None or fq.spec.granularity == "group":
            return
        if input_scale.numel() != 1:
            return
        self.bias_scale = bias_scale(input_scale, fq.scale.reshape(-1))

    def link_input_quantizer(self, input_fq: FakeQuantize) -> None:
        """Take ``s_x`` from ``input_fq`` at every call, so trained scales keep the bias exact.

        The quantizer is referenced, not registered (it belongs to the graph around
        the layer); a deep copy of the whole model keeps the link.
        """
        self.__dict__["_input_fq_link"] = input_fq
        if input_fq.quantizing and input_fq.per_tensor_int_range is not None:
            self.set_bias_scale(input_fq.scale)

    def _bias_scale(self) -> Tensor:
        link = self.__dict__.get("_input_fq_link")
        if link is None or self.weight_fq is None or self.bias_scale.numel() == 0:
            return self.bias_scale
        if not (link.quantizing and link.per_tensor_int_range is not None):
            return torch.empty(0)
        return bias_scale(link.scale, self.weight_fq.scale.reshape(-1))

    def qweight(self) -> Tensor:
        if self.weight_fq is None or self.float_weight:
            return self.weight
        return self.weight_fq(self.weight)

    def qbias(self) -> Tensor | None:
        quantized = self.weight_fq is not None and self.weight_fq.quantizing
        if self.bias is None or self.float_weight or not quantized:
            return self.bias
        scale = self._bias_scale()
        return self.bias if scale.numel() == 0 else quantize_bias(self.bias, scale)

    def _qinput(self, x: Tensor) -> Tensor:
        return self.input_fq(x) if self.input_fq is not None else x


class QuantConv2d(nn.Conv2d, _QuantWeight):
    """``nn.Conv2d`` with fake-quantized weights (per output channel by default)."""

    @classmethod
    def from_float(
        cls, conv: nn.Conv2d, wspec: QuantSpec | None, aspec: QuantSpec | None = None
    ) -> QuantConv2d:
        q = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            conv.bias is not None,
            conv.padding_mode,
        )
        q.weight, q.bias = conv.weight, conv.bias
        q._init_quant(wspec, aspec)
        return q

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(self._qinput(x), self.qweight(), self.qbias())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        resize_buffers(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class QuantLinear(nn.Linear, _QuantWeight):
    """``nn.Linear`` with fake-quantized weights (per output feature by default)."""

    @classmethod
    def from_float(
        cls, lin: nn.Linear, wspec: QuantSpec | None, aspec: QuantSpec | None = None
    ) -> QuantLinear:
        q = cls(lin.in_features, lin.out_features, lin.bias is not None)
        q.weight, q.bias = lin.weight, lin.bias
        q._init_quant(wspec, aspec)
        return q

    def forward(self, x: Tensor) -> Tensor:
        # on 2-D inputs the exporter writes Gemm, whose bias the runtime adds as int32;
        # on 3-D inputs it writes MatMul + Add, and the runtime adds the float bias
        bias = self.qbias() if x.dim() == 2 else self.bias
        return F.linear(self._qinput(x), self.qweight(), bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        resize_buffers(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def learn_scales_(model: nn.Module, weights: bool = True, activations: bool = True) -> int:
    """Make the scales of every active quantizer trainable; returns how many.

    Zero points stay fixed. The ``state_dict`` keys do not change, so a saved
    model reloads the trained scales.

    Example:
        >>> fq = FakeQuantize(QuantSpec(granularity="tensor"))
        >>> _ = fq(torch.randn(10)); fq.freeze()
        >>> learn_scales_(nn.Sequential(fq)), fq.learning
        (1, True)
    """
    n = 0
    for name, fq in fake_quantizers(model):
        wanted = weights if name.endswith("weight_fq") else activations
        if wanted and fq.quantizing and fq.spec.granularity != "group":
            fq.learn_scale_(True)
            n += 1
    return n


def fake_quantizers(model: nn.Module) -> Iterator[tuple[str, FakeQuantize]]:
    """Every :class:`FakeQuantize` in ``model`` with its name."""
    for name, m in model.named_modules():
        if isinstance(m, FakeQuantize):
            yield name, m


@contextlib.contextmanager
def float_weights(model: nn.Module) -> Iterator[nn.Module]:
    """Run quantized layers with their float weights (restored on exit)."""
    layers = [m for m in model.modules() if isinstance(m, _QuantWeight)]
    old = [m.float_weight for m in layers]
    for m in layers:
        m.float_weight = True
    try:
        yield model
    finally:
        for m, o in zip(layers, old, strict=True):
            m.float_weight = o
