"""A learnable bit-width per layer: continuous bits in [2, 8], pushed down by a size penalty.

Each quantized layer's weight (and, when asked, its input) gets a trainable
real-valued bit-width ``b``. The forward pass is a fractional-bit quantizer
(Yang and Jin, "FracBits: Mixed Precision Quantization via Fractional
Bit-Widths", AAAI 2021, eq. 4): with ``k = floor(b)`` and ``f = b - k``::

    Q_b(x) = (1 - f) * Q_k(x) + f * Q_{k+1}(x)

so ``dQ/db = Q_{k+1}(x) - Q_k(x)``: the loss sees what one more bit would buy.
``Q_k`` is a symmetric uniform quantizer with a learned clipping level
``alpha`` (step ``alpha / (2^(k-1) - 1)``, LSQ's straight-through rounding and
its gradient scale; Esser et al., ICLR 2020). A regularizer on the model's size
(weights x bits) or its BOPs (MACs x weight bits x activation bits) pushes the
bits down to a target average (:func:`bits_penalty`); an exponential moving
average of every ``b`` smooths the oscillation of the last steps, and at the end
the average is rounded to integer bits (:func:`round_bits_`).

Training follows the four steps of the source's VGG16 study (528 MB -> 6.5 MB):
float model, then quantized weights with learned bits (activations float), then
quantized activations, then a fine-tune at a tiny learning rate with the rounded
bits frozen (:mod:`edgeslim.workflows.learned_bits`). The classifier head stays
in float unless ``quantize_head``.

Deployment: layers that round to 8 bits export as INT8 QDQ; fewer bits buy size
in a packed file, not speed, on ONNX Runtime's CPU kernels (which the QAT
workflow's report says).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import register_method
from edgeslim.quant.qat.common import Grid, QATConfig, Quantizer, bshape, grad_scale, round_ste
from edgeslim.quant.qat.handler import QATMethod
from edgeslim.quant.qat.layers import QAT_TWINS, qat_layers


def levels(k: int, signed: bool, narrow: bool = True) -> tuple[int, int, int]:
    """``(qmin, qmax, n)`` of ``k`` bits; the step is ``alpha / n``.

    Signed weight grids are narrow, symmetric at low bits (``-n .. n``,
    ``n = 2^(k-1) - 1``); signed activations take the full range (``-n - 1 .. n``,
    what ONNX Runtime's int8 kernels take); unsigned grids are ``0 .. 2^k - 1``.

    Example:
        >>> levels(4, True), levels(4, True, narrow=False), levels(4, False)
        ((-7, 7, 7), (-8, 7, 7), (0, 15, 15))
    """
    if signed:
        n = 2 ** (k - 1) - 1
        return (-n if narrow else -n - 1), n, n
    n = 2**k - 1
    return 0, n, n


class LearnedBitsQuantizer(Quantizer):
    """A learned clipping level ``alpha`` and a learned continuous bit-width ``bits_param``.

    ``fixed_bits`` (a buffer; 0 while the bits are continuous) holds the rounded
    bits after :meth:`round_`; ``enabled`` (a buffer) switches an activation
    quantizer on in the third training step. Python mirrors of both keep the
    forward pass free of tensor reads once rounded (ONNX export).
    """

    def __init__(
        self,
        bits: int,
        *,
        is_weight: bool,
        channels: int | None = None,
        min_bits: int = 2,
        max_bits: int = 8,
        learn: bool = True,
        momentum: float = 0.9,
        bits_lr_scale: float = 1.0,
        enabled: bool = True,
    ) -> None:
        super().__init__(bits, signed=is_weight)
        self.is_weight = is_weight
        self.per_channel = channels is not None
        self.min_bits, self.max_bits, self.momentum = min_bits, max_bits, momentum
        self.bits_lr_scale = bits_lr_scale
        self.alpha = nn.Parameter(torch.ones(channels or 1))
        self.bits_param = nn.Parameter(torch.tensor(float(bits)), requires_grad=learn)
        self.register_buffer("bits_ema", torch.tensor(float(bits)))
        self.register_buffer("fixed_bits", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("enabled", torch.tensor(int(enabled), dtype=torch.uint8))
        self._fixed, self._enabled = 0, enabled

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._fixed, self._enabled = int(self.fixed_bits), bool(self.enabled)
        if self._fixed:
            self.bits = self._fixed
            self.bits_param.requires_grad_(False)

    # -- state ---------------------------------------------------------------------------
    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def enable_(self, on: bool = True) -> None:
        self._enabled = bool(on)
        self.enabled.fill_(int(on))

    @property
    def rounded(self) -> bool:
        return self._fixed > 0

    def continuous_bits(self) -> Tensor:
        """``b`` clamped to ``[min_bits, max_bits]`` (differentiable inside).

        Its gradient is scaled by ``bits_lr_scale``: one bit is a large step for a
        learning rate tuned for weights.
        """
        return grad_scale(self.bits_param, self.bits_lr_scale).clamp(self.min_bits, self.max_bits)

    def current_bits(self) -> float:
        """The bits this quantizer stands for now: the rounded bits, else the smoothed ``b``."""
        return float(self._fixed) if self._fixed else float(self.bits_ema)

    def round_(self) -> int:
        """Round the moving average of ``b`` to integer bits and freeze them."""
        k = int(min(max(round(float(self.bits_ema)), self.min_bits), self.max_bits))
        self.fixed_bits.fill_(k)
        self._fixed, self.bits = k, k
        self.bits_param.requires_grad_(False)
        return k

    # -- calibration ---------------------------------------------------------------------
    def init_from(self, lo: Tensor, hi: Tensor, mean_abs: float) -> None:
        if self.is_weight:
            self.signed = True
        amax = torch.maximum(lo.abs(), hi)
        _, _, n = levels(self.bits, self.signed)
        lsq = 2 * mean_abs * math.sqrt(n)  # LSQ's initial step times the levels
        alpha = torch.clamp(amax, max=lsq) if self.bits < 6 else amax
        self.alpha.copy_(alpha.clamp_min(1e-8).reshape(self.alpha.shape))

    # -- simulation ----------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        if not self._enabled and not self.calibrating:
            return x
        return super().forward(x)

    def _q(self, x: Tensor, alpha: Tensor, k: int) -> Tensor:
        qmin, qmax, n = levels(k, self.signed, narrow=self.is_weight)
        s = bshape(alpha / n, x)
        return round_ste(torch.clamp(x / s, qmin, qmax)) * s

    def _alpha(self, x: Tensor, k: int) -> Tensor:
        a = self.alpha.abs().clamp_min(1e-8)
        if self.training:
            by_row = self.per_channel or not self.is_weight
            shared = x.numel() // x.shape[0] if by_row else x.numel()
            a = grad_scale(a, 1.0 / math.sqrt(max(shared, 1) * levels(k, self.signed)[2]))
        return a

    def quantize(self, x: Tensor) -> Tensor:
        if self._fixed:
            return self._q(x, self._alpha(x, self._fixed), self._fixed)
        b = self.continuous_bits()
        if self.training:
            with torch.no_grad():
                self.bits_ema.mul_(self.momentum).add_((1 - self.momentum) * b.detach())
        k = min(int(math.floor(float(b.detach()))), self.max_bits - 1)
        f = b - k
        a = self._alpha(x, k)
        return (1 - f) * self._q(x, a, k) + f * self._q(x, a, k + 1)

    def grid(self, x: Tensor | None = None) -> Grid:
        k = self._fixed or int(round(float(self.bits_ema)))
        qmin, qmax, n = levels(k, self.signed, narrow=self.is_weight)
        s = self.alpha.detach().abs().clamp_min(1e-8) / n
        return Grid(s, torch.zeros_like(s, dtype=torch.int32), qmin, qmax)

    def extra_repr(self) -> str:
        bits = self._fixed or f"{float(self.bits_ema):.2f} (learning)"
        return f"bits={bits}, signed={bool(self.signed)}, enabled={self._enabled}"


@dataclass(frozen=True)
class LearnedBitsConfig(QATConfig):
    """A learnable bit-width per layer (see the module docstring).

    Args:
        w_bits: the bits every weight starts at (8: the float-like start).
        a_bits: the bits of the activations in the third step (None: float).
        min_bits, max_bits: the range of the continuous bits.
        target_bits: the average the regularizer pushes the weight bits down to.
        penalty: the regularizer's strength (loss units per bit above the target).
        regularizer: ``size`` (weights x bits) or ``bops`` (MACs x bits x bits).
        learn_activation_bits: activations learn their bits too (else fixed ``a_bits``).
        per_channel_weights: one clipping level per output channel.
        momentum: of the moving average that is rounded at the end.
        bits_lr_scale: the bits' gradient times this (their learning rate relative to weights').
        quantize_head: quantize the last linear/conv layer too (default: float).
        weight_epochs, activation_epochs, finetune_epochs: the epochs of steps 2-4.
        finetune_lr_scale: step 4's learning rate as a fraction of the given one.
    """

    w_bits: int = 8
    a_bits: int | None = 8
    min_bits: int = 2
    max_bits: int = 8
    target_bits: float = 5.0
    penalty: float = 1.0
    regularizer: Literal["size", "bops"] = "size"
    learn_activation_bits: bool = False
    per_channel_weights: bool = True
    momentum: float = 0.9
    bits_lr_scale: float = 10.0
    quantize_head: bool = False
    weight_epochs: int = 2
    activation_epochs: int = 1
    finetune_epochs: int = 1
    finetune_lr_scale: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reduce_range and self.max_bits == 8:  # 8-bit codes would saturate here
            object.__setattr__(self, "max_bits", 7)
        if not 2 <= self.min_bits < self.max_bits <= 8:
            raise EdgeslimError(
                f"learned bits need 2 <= min_bits < max_bits <= 8, got {self.min_bits}, "
                f"{self.max_bits}"
            )
        if not self.min_bits <= self.target_bits <= self.max_bits:
            raise EdgeslimError(f"target_bits {self.target_bits} is outside the bit range")
        if self.regularizer not in ("size", "bops"):
            raise EdgeslimError(f"regularizer is size or bops, got {self.regularizer!r}")
        if self.penalty < 0 or not 0 <= self.momentum < 1:
            raise EdgeslimError("learned bits need penalty >= 0 and 0 <= momentum < 1")
        if self.finetune_lr_scale <= 0 or self.bits_lr_scale <= 0:
            raise EdgeslimError("finetune_lr_scale and bits_lr_scale must be > 0")
        if min(self.weight_epochs, self.activation_epochs, self.finetune_epochs) < 0:
            raise EdgeslimError("the epochs of the learned-bits steps are >= 0")

    def weight_quantizer(self, layer: nn.Module) -> Quantizer:
        return LearnedBitsQuantizer(
            self.w_bits,
            is_weight=True,
            channels=layer.weight.shape[0] if self.per_channel_weights else None,
            min_bits=self.min_bits,
            max_bits=self.max_bits,
            momentum=self.momentum,
            bits_lr_scale=self.bits_lr_scale,
        )

    def activation_quantizer(self) -> Quantizer | None:
        if self.a_bits is None:
            return None
        return LearnedBitsQuantizer(
            self.a_bits,
            is_weight=False,
            min_bits=self.min_bits,
            max_bits=self.max_bits,
            learn=self.learn_activation_bits,
            momentum=self.momentum,
            bits_lr_scale=self.bits_lr_scale,
            enabled=False,  # switched on in the third step
        )


def head_name(model: nn.Module) -> str | None:
    """The last conv/linear layer in module order: the classifier head."""
    names = [n for n, m in model.named_modules() if n and type(m) in QAT_TWINS]
    return names[-1] if names else None


@register_method(LearnedBitsConfig, "qat_learned_bits")
class LearnedBits(QATMethod):
    """Learned bit-widths through :func:`edgeslim.core.methods.apply_`; the head stays float."""

    def apply_(self, model, config: LearnedBitsConfig, layers, calib):
        head = head_name(model)
        if head is not None and not config.quantize_head:
            layers.overrides = ((f"^{head.replace('.', '[.]')}$", None), *layers.overrides)
        model, details = super().apply_(model, config, layers, calib)
        layer_macs_(model, calib)
        return model, {**details, "head_in_float": None if config.quantize_head else head}


def learned_quantizers(model: nn.Module, weights: bool = True):
    """``(layer name, layer, quantizer)`` for every learned-bits weight (or input) quantizer."""
    for name, layer in qat_layers(model):
        q = layer.weight_q if weights else layer.input_q
        if isinstance(q, LearnedBitsQuantizer):
            yield name, layer, q


def layer_macs_(model: nn.Module, calib) -> None:
    """Store each QAT layer's MACs per sample (``layer.macs``) from one batch, for BOPs."""
    from edgeslim.quant.qat.handler import _first_batch

    x = _first_batch(calib)
    for _, layer, _q in learned_quantizers(model):
        layer.macs = float(layer.weight.numel())  # a linear's MACs per token; refined below
    if x is None:
        return
    hooks = []
    for _, layer, _q in learned_quantizers(model):

        def hook(mod, _inp, out):
            spatial = out[0].numel() // out.shape[1] if out.dim() > 2 else 1
            mod.macs = float(mod.weight.numel() * spatial)

        hooks.append(layer.register_forward_hook(hook))
    try:
        with torch.no_grad():
            was = model.training
            model.eval()
            model(x)
            model.train(was)
    finally:
        for h in hooks:
            h.remove()


def average_bits(model: nn.Module) -> Tensor:
    """The weight-count weighted average of the weight bits (differentiable while learning)."""
    num, den = [], 0
    for _, layer, q in learned_quantizers(model):
        b = torch.tensor(float(q._fixed)) if q.rounded else q.continuous_bits()
        num.append(b * layer.weight.numel())
        den += layer.weight.numel()
    if not num:
        raise EdgeslimError("the model has no learned-bits layers")
    return torch.stack(num).sum() / den


def bits_penalty(model: nn.Module, config: LearnedBitsConfig) -> tuple[Tensor, Tensor]:
    """``(penalty, average weight bits)``: ``penalty * |average - target|``.

    Two-sided, so that the average settles at the target instead of overshooting
    below it on the optimizer's momentum; which layers keep more bits and which
    fewer is left to the task loss (the gradient of ``Q_b`` in ``b``).

    ``size`` averages the weight bits over the weights; ``bops`` averages
    ``w_bits * a_bits / a_max`` over the MACs, so the same target reads as weight
    bits when activations stay at their maximum.
    """
    avg = average_bits(model)
    if config.regularizer == "size":
        measure = avg
    else:
        num, den = [], 0.0
        for _, layer, q in learned_quantizers(model):
            wb = torch.tensor(float(q._fixed)) if q.rounded else q.continuous_bits()
            aq = layer.input_q
            if isinstance(aq, LearnedBitsQuantizer) and aq.is_enabled:
                ab = torch.tensor(float(aq._fixed)) if aq.rounded else aq.continuous_bits()
            else:
                ab = torch.tensor(float(config.max_bits))
            macs = float(getattr(layer, "macs", layer.weight.numel()))
            num.append(wb * ab / config.max_bits * macs)
            den += macs
        measure = torch.stack(num).sum() / den
    return config.penalty * (measure - config.target_bits).abs(), avg


def enable_inputs_(model: nn.Module, calib, batches: int) -> int:
    """Step 3: calibrate every learned-bits input quantizer on ``batches`` batches, switch it on.

    Returns how many quantizers were switched on.
    """
    from edgeslim.quant.qat.handler import observe_inputs_

    qs = [q for _, _, q in learned_quantizers(model, weights=False)]
    if not qs:
        return 0
    observe_inputs_(model, qs, calib, batches)
    for q in qs:
        q.enable_()
    return len(qs)


def round_bits_(model: nn.Module) -> dict[str, int]:
    """Round every learned bit-width (weights and inputs); returns the weights' bits per layer."""
    out = {}
    for name, layer in qat_layers(model):
        for q in (layer.weight_q, layer.input_q):
            if isinstance(q, LearnedBitsQuantizer):
                k = q.round_()
                if q is layer.weight_q:
                    out[name] = k
    return out


def bits_table(model: nn.Module) -> list[dict]:
    """One row per quantized layer: weights, weight bits, input bits (None: float)."""
    rows = []
    for name, layer in qat_layers(model):
        wq, aq = layer.weight_q, layer.input_q
        learned = isinstance(wq, LearnedBitsQuantizer)
        wb = wq.current_bits() if learned else getattr(wq, "bits", None)
        ab = None
        if isinstance(aq, LearnedBitsQuantizer):
            ab = aq.current_bits() if aq.is_enabled else None
        elif aq is not None:
            ab = aq.bits
        rows.append({"name": name, "weights": layer.weight.numel(), "w_bits": wb, "a_bits": ab})
    return rows
