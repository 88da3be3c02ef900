"""Post-training quantization: fold BN, insert fake-quant, calibrate, correct, allocate bits.

The flow (Jacob et al. 2018; Krishnamoorthi 2018; Banner et al. 2019; Nagel et al. 2019):

1. fold BatchNorm into the preceding conv (:mod:`edgeslim.fuse.conv_bn`);
2. swap conv/linear for fake-quant twins with per-channel weight quantizers,
   optionally with per-channel bit widths under an average budget;
3. insert per-tensor activation quantizers at ONNX Runtime's quantization points
   (:mod:`edgeslim.quant.graph`; models ``torch.fx`` cannot trace fall back to
   quantizing each layer's input);
4. calibrate on N batches;
5. optionally correct each layer's bias on the calibration data.

:func:`quantize_ptq` never modifies the caller's model.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn
from tqdm import tqdm

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.layer_types import layer_type_of
from edgeslim.core.methods import LayerPlan, Method, register_method
from edgeslim.core.modes import eval_mode
from edgeslim.core.select import set_submodule
from edgeslim.fuse.conv_bn import fold_bn_
from edgeslim.quant.bias_correction import bias_correct_
from edgeslim.quant.bit_allocation import allocate_bits
from edgeslim.quant.config import PTQConfig
from edgeslim.quant.fake_quant import FakeQuantize, _QuantWeight, fake_quantizers
from edgeslim.quant.graph import insert_activation_quantizers, traceable


@dataclass
class QuantizedModel:
    """A fake-quantized model, its BN-folded float reference and what was done."""

    model: nn.Module
    float_model: nn.Module
    config: PTQConfig
    graph_mode: str  # "fx" (quantization points on the traced graph) or "module"
    input_quantizer_of: dict[str, str] = field(default_factory=dict)
    bias_shifts: dict[str, float] = field(default_factory=dict)

    def layers(self) -> list[str]:
        """Names of the layers whose weights are quantized."""
        return [
            n for n, m in self.model.named_modules() if isinstance(m, _QuantWeight) and m.weight_fq
        ]


def _inputs(batch) -> Tensor:
    return batch[0] if isinstance(batch, list | tuple) else batch


def quantizable(module: nn.Module) -> bool:
    """True when ``module``'s exact type has a fake-quant twin in the layer-type table."""
    entry = layer_type_of(type(module))
    return entry is not None and entry.twin is not None


def prepare_(
    model: nn.Module, config: PTQConfig, layers: LayerPlan | None = None
) -> tuple[nn.Module, str, dict[str, str]]:
    """Fold, swap and insert quantizers into ``model`` in place (nothing calibrated yet).

    ``layers`` chooses the config of each layer (default: ``config`` everywhere);
    within it, :meth:`PTQConfig.weight_spec_for` still applies ``exclude`` and the
    weight-spec overrides. Returns ``(root, graph mode, {layer: its input quantizer})``;
    the root is a new ``GraphModule`` sharing the layers when activations are
    quantized on the traced graph. Deterministic: replaying it on the same
    architecture yields the same module names (what a saved model's reload relies on).
    """
    layers = layers or LayerPlan(config)
    if config.fold_bn:
        fold_bn_(model)
    for name, mod, cfg in layers.select(model, quantizable):
        wspec = cfg.weight_spec_for(name)
        if wspec is None or not name:  # the root itself cannot be swapped in place
            continue
        new = layer_type_of(type(mod)).twin_class().from_float(mod, wspec)
        if cfg.bit_allocation:
            _allocate(new, wspec.bits)
        set_submodule(model, name, new)
        layers.done(name, cfg)
    qm, mode, input_of = model, "module", {}
    if config.activation is not None:
        gm = traceable(qm)
        if gm is not None:
            input_of = insert_activation_quantizers(gm, config.activation)
            qm, mode = gm, "fx"
        else:
            warnings.warn(
                "model is not torch.fx-traceable: quantizing each layer's input only "
                "(residual adds and pooling stay in float)",
                stacklevel=2,
            )
            for name, mod in qm.named_modules():
                if isinstance(mod, _QuantWeight) and mod.weight_fq is not None:
                    mod.input_fq = FakeQuantize(config.activation)
                    input_of[name] = f"{name}.input_fq"
    link_bias_scales(qm, input_of)
    return qm.eval(), mode, input_of


def link_bias_scales(model: nn.Module, input_of: dict[str, str]) -> None:
    """Tie each layer's int32 bias scale to its input quantizer (``s_x * s_w``, kept live)."""
    for layer_name, fq_name in input_of.items():
        model.get_submodule(layer_name).link_input_quantizer(model.get_submodule(fq_name))


def prepare(model: nn.Module, config: PTQConfig) -> QuantizedModel:
    """Fold, swap and insert quantizers into a copy of ``model`` (nothing calibrated yet)."""
    ref = copy.deepcopy(model).eval()
    if config.fold_bn:
        fold_bn_(ref)
    qm, mode, input_of = prepare_(copy.deepcopy(ref), replace(config, fold_bn=False))
    return QuantizedModel(qm, ref, config, mode, input_of)


def _allocate(layer: _QuantWeight, avg_bits: int) -> None:
    fq = layer.weight_fq
    w = layer.weight.detach().reshape(layer.weight.shape[0], -1)
    fq.set_bits(allocate_bits(w.amax(1) - w.amin(1), avg_bits))
    fq.freeze()


def calibrate_(qm: QuantizedModel, data: Iterable, batches: int, progress: bool = True) -> int:
    """Observe ``batches`` batches of ``data`` and freeze every activation quantizer.

    Returns the number of batches seen.
    """
    act = [fq for _, fq in fake_quantizers(qm.model) if fq.observing]
    for fq in act:
        fq.observing, fq.quantizing = True, False
    seen = 0
    with torch.no_grad(), eval_mode(qm.model):
        it = tqdm(data, total=batches, desc="calibrate", leave=False, disable=not progress)
        for batch in it:
            if seen >= batches:
                break
            qm.model(_inputs(batch))
            seen += 1
    if seen == 0 and act:
        raise EdgeslimError("calibration data is empty")
    for fq in act:
        if fq.observer.observed:
            fq.freeze()
        else:  # never reached (e.g. a dead branch): stay transparent
            fq.observing = fq.quantizing = False
    # the runtime adds each bias as int32 at s_x * s_w: simulate it now that s_x is known
    link_bias_scales(qm.model, qm.input_quantizer_of)
    return seen


def quantize_ptq(
    model: nn.Module, data: Iterable | None, config: PTQConfig | None = None, progress: bool = True
) -> QuantizedModel:
    """Post-training quantize a copy of ``model`` with calibration ``data``.

    Args:
        model: a float model (not modified).
        data: an iterable of batches (``(x, y)`` or ``x``); may be None for weight-only.
        config: the :class:`PTQConfig` (default: W8A8, per-channel weights, min-max).
        progress: show progress bars.

    Example:
        >>> from edgeslim.models import build_zoo_model
        >>> m = build_zoo_model("resnet20")
        >>> qm = quantize_ptq(m, [torch.randn(8, 3, 32, 32)], PTQConfig(calib_batches=1),
        ...                   progress=False)
        >>> qm.graph_mode, len(qm.layers())
        ('fx', 22)
    """
    config = config or PTQConfig()
    qm = prepare(model, config)
    _calibrate_and_correct(qm, data, config, progress)
    return qm


def _calibrate_and_correct(
    qm: QuantizedModel, data: Iterable | None, config: PTQConfig, progress: bool
) -> None:
    if config.activation is not None:
        if data is None:
            raise EdgeslimError("activation quantization needs calibration data")
        calibrate_(qm, data, config.calib_batches, progress)
    if config.bias_correction:
        if data is None:
            raise EdgeslimError("bias correction needs calibration data")
        xs = []
        for batch in data:
            if len(xs) >= config.bias_correction_batches:
                break
            xs.append(_inputs(batch))
        qm.bias_shifts = bias_correct_(qm.model, qm.float_model, xs, progress)


@register_method(PTQConfig, "ptq")
class PTQ(Method):
    """Post-training quantization through :func:`edgeslim.core.methods.apply_`.

    ``calib`` is the calibration data. Per-layer overrides are :class:`PTQConfig`s
    whose weight spec (and ``bit_allocation``) apply to that layer; the activation
    spec, calibration and bias correction are the main config's.
    """

    def apply_(self, model, config, layers, calib):
        if config.fold_bn:
            fold_bn_(model)
        ref = copy.deepcopy(model).eval() if config.bias_correction else None
        root, mode, input_of = prepare_(model, replace(config, fold_bn=False), layers)
        qm = QuantizedModel(root, ref, config, mode, input_of)
        _calibrate_and_correct(qm, calib, config, progress=False)
        return root, {
            "graph_mode": mode,
            "quantized_layers": len(layers.applied),
            "bias_shifts": qm.bias_shifts,
        }

    def restore_(self, model, config, layers):
        return prepare_(model, config, layers)[0]
