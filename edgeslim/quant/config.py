"""PTQ configuration: frozen dataclasses plus an ordered per-layer override map.

A :class:`QuantSpec` says how one tensor is quantized (bits, sign, symmetry,
granularity, calibrator). A :class:`PTQConfig` bundles the weight spec, the
activation spec and the flow options. Per-layer overrides follow torchao: an
ordered sequence of ``(name or regex, QuantSpec | None)``; the first pattern that
matches a layer's qualified name wins, and ``None`` keeps that layer in float.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from edgeslim.core.cpu import int8_pairs_saturate
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import MethodConfig
from edgeslim.core.select import compile_pattern, matches
from edgeslim.quant.primitives import qrange

GRANULARITIES = ("tensor", "channel", "group")


@dataclass(frozen=True)
class QuantSpec:
    """How to quantize one tensor.

    Example:
        >>> QuantSpec(bits=4).qrange()
        (-7, 7)
        >>> QuantSpec(bits=8, signed=False, symmetric=False, granularity="tensor").qrange()
        (0, 255)
    """

    bits: int = 8
    signed: bool = True
    symmetric: bool = True
    granularity: str = "channel"  # "tensor" | "channel" | "group"
    group_size: int | None = None
    narrow: bool | None = None  # default: narrow for signed symmetric (no -128 code)
    pow2_scale: bool = False
    observer: str = "minmax"
    observer_args: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        qrange(self.bits, self.signed)  # validates the bit width
        if self.bits > 8:
            raise EdgeslimError(f"edgeslim quantizes to 2..8 bits, got {self.bits}")
        if self.granularity not in GRANULARITIES:
            raise EdgeslimError(f"granularity {self.granularity!r}: choose {GRANULARITIES}")
        if self.granularity == "group" and not self.group_size:
            raise EdgeslimError("granularity 'group' needs a group_size")

    def qrange(self) -> tuple[int, int]:
        narrow = self.narrow if self.narrow is not None else (self.signed and self.symmetric)
        return qrange(self.bits, self.signed, narrow)

    def with_(self, **kw) -> QuantSpec:
        return replace(self, **kw)


def weight_spec(bits: int = 8, observer: str = "minmax", per_channel: bool = True) -> QuantSpec:
    """Signed symmetric narrow-range weights (zero-point 0), what integer GEMMs want."""
    return QuantSpec(bits, True, True, "channel" if per_channel else "tensor", observer=observer)


def activation_spec(bits: int = 8, observer: str = "minmax") -> QuantSpec:
    """Unsigned asymmetric per-tensor activations: u8 x s8 is x86 VNNI's fast path."""
    return QuantSpec(bits, False, False, "tensor", observer=observer)


Override = tuple[str, QuantSpec | None]


@dataclass(frozen=True)
class PTQConfig(MethodConfig):
    """Everything the post-training quantization flow needs.

    Args:
        weight: weight spec; ``None`` leaves every weight in float.
        activation: activation spec; ``None`` is weight-only quantization.
        calib_batches: calibration batches to observe.
        bias_correction: empirical per-channel bias correction (Nagel et al. 2019).
        bit_allocation: per-channel weight bits with ``weight.bits`` as the average
            budget (Banner et al. 2019).
        exclude: names or regexes of layers kept in float (e.g. the classifier head).
        overrides: ordered ``(name or regex, QuantSpec | None)`` weight overrides.
        fold_bn: fold BatchNorm into the preceding conv first.
        reduce_range: cap 8-bit weights at 7 bits (codes in -63..63) so that the
            u8 x s8 kernels of x86 CPUs without VNNI cannot saturate (see
            :mod:`edgeslim.core.cpu`); ``None`` (default) decides from this CPU, and
            the decision is stored in the config, so a saved model replays it.

    Example:
        >>> cfg = PTQConfig(weight=weight_spec(4), exclude=("fc",))
        >>> cfg.weight_spec_for("layer1.0.conv1").bits, cfg.weight_spec_for("fc")
        (4, None)
    """

    weight: QuantSpec | None = field(default_factory=weight_spec)
    activation: QuantSpec | None = field(default_factory=activation_spec)
    calib_batches: int = 16
    bias_correction: bool = False
    bias_correction_batches: int = 4
    bit_allocation: bool = False
    exclude: tuple[str, ...] = ()
    overrides: tuple[Override, ...] = ()
    fold_bn: bool = True
    reduce_range: bool | None = None

    def __post_init__(self) -> None:
        if self.reduce_range is None:
            object.__setattr__(self, "reduce_range", int8_pairs_saturate())
        if self.calib_batches < 1:
            raise EdgeslimError(f"calib_batches must be >= 1, got {self.calib_batches}")
        for pat, _ in self.overrides:
            _compile(pat)
        for pat in self.exclude:
            _compile(pat)

    def weight_spec_for(self, name: str) -> QuantSpec | None:
        """Weight spec of layer ``name``: excluded -> None, else first override, else default."""
        if any(_matches(p, name) for p in self.exclude):
            return None
        spec = self.weight
        for pat, override in self.overrides:
            if _matches(pat, name):
                spec = override
                break
        if spec is not None and self.reduce_range and spec.bits == 8:
            spec = spec.with_(bits=7)
        return spec


def _compile(pattern: str):
    return compile_pattern(pattern)


def _matches(pattern: str, name: str) -> bool:
    """Exact name, or a regex that matches the whole name."""
    return matches(name, pattern)
