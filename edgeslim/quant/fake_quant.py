"""Fake-quantization modules: observe, then quantize-dequantize in float.

Jacob et al. 2018, Section 3: the simulated value ``S (clamp(round(x/S) + Z) - Z)``
is exactly what an integer kernel sees, so accuracy measured on the simulation
is the deployed accuracy. :class:`FakeQuantize` holds an observer and the frozen
``scale`` / ``zero_point`` in buffers (a checkpoint is complete);
:class:`QuantConv2d` / :class:`QuantLinear` are drop-in subclasses of the torch
layers (same parameter names) whose weights pass through a weight quantizer.

Per-tensor 8-bit activations run through ``torch.fake_quantize_per_tensor_affine``,
which the ONNX exporter lowers to ``QuantizeLinear -> DequantizeLinear``: the
quantization points of the simulation and of the deployed graph are the same
nodes by construction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeslim.quant.config import QuantSpec
from edgeslim.quant.observers import make_observer
from edgeslim.quant.observers.base import resize_buffers
from edgeslim.quant.primitives import choose_qparams, fake_quantize, fake_quantize_groups

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
        self.observing = True
        self.quantizing = False
        # python ints (not tensors) so that export never reads a tensor value
        self.per_tensor_int_range: tuple[int, int] | None = (
            (qmin, qmax) if self.ch_axis is None and spec.granularity == "tensor" else None
        )
        self._scalar_qparams: tuple[float, int] | None = None  # cache of the buffers

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        resize_buffers(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._cache_scalars()

    def _cache_scalars(self) -> None:
        """Python copies of per-tensor qparams: export must not read tensor values."""
        if self.per_tensor_int_range is not None and self.scale.numel() == 1:
            self._scalar_qparams = (float(self.scale), int(self.zero_point))
        else:
            self._scalar_qparams = None

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
        self.scale, self.zero_point = choose_qparams(
            lo, hi, self.qmin, self.qmax, symmetric=self.spec.symmetric, pow2=self.spec.pow2_scale
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
            return fake_quantize_groups(
                x, self.spec.group_size, qmin, qmax, symmetric=self.spec.symmetric
            )
        rng = self.per_tensor_int_range
        if rng is not None:
            # scalar qparams: the exporter lowers this overload to QuantizeLinear/DequantizeLinear
            if self._scalar_qparams is None:
                self._cache_scalars()
            s, z = self._scalar_qparams
            return torch.fake_quantize_per_tensor_affine(x, s, z, rng[0], rng[1])
        return fake_quantize(x, self.scale, self.zero_point, self.qmin, self.qmax, self.ch_axis)

    def extra_repr(self) -> str:
        return f"bits={self.spec.bits}, {self.spec.granularity}, observer={self.spec.observer}"


class _QuantWeight:
    """Mixin: a layer whose weight goes through ``weight_fq`` (and input through ``input_fq``)."""

    weight_fq: FakeQuantize | None
    input_fq: FakeQuantize | None
    float_weight: bool

    def _init_quant(self, wspec: QuantSpec | None, aspec: QuantSpec | None) -> None:
        self.weight_fq = FakeQuantize(wspec, ch_axis=0) if wspec is not None else None
        self.input_fq = FakeQuantize(aspec) if aspec is not None else None
        self.float_weight = False  # set by the QDQ writer: it stores the integer weights itself
        if self.weight_fq is not None:
            self.weight_fq(self.weight)  # weights are known now: calibrate immediately
            self.weight_fq.freeze()

    def qweight(self) -> Tensor:
        if self.weight_fq is None or self.float_weight:
            return self.weight
        return self.weight_fq(self.weight)

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
        return self._conv_forward(self._qinput(x), self.qweight(), self.bias)


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
        return F.linear(self._qinput(x), self.qweight(), self.bias)


QUANT_LAYERS: dict[type, type] = {nn.Conv2d: QuantConv2d, nn.Linear: QuantLinear}


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
