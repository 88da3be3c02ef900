"""Post-training quantization: fold BN, insert fake-quant, calibrate, correct, allocate bits.

The flow (Jacob et al. 2018; Krishnamoorthi 2018; Banner et al. 2019; Nagel et al. 2019):

1. fold BatchNorm into the preceding conv (:mod:`edgeslim.fuse.conv_bn`);
2. swap conv/linear for fake-quant twins with per-channel weight quantizers,
   optionally with per-channel bit widths under an average budget;
3. insert per-tensor activation quantizers at ONNX Runtime's quantization points
   (:mod:`edgeslim.quant.graph`, on the ``torch.export`` capture; a model that
   cannot be captured falls back to quantizing each layer's input, with a warning);
4. calibrate on N batches;
5. optionally correct each layer's bias on the calibration data.

:func:`quantize_ptq` never modifies the caller's model.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm import tqdm

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode
from edgeslim.fuse.conv_bn import fold_bn_
from edgeslim.graph.calls import ModelGraph
from edgeslim.quant.bias_correction import bias_correct_
from edgeslim.quant.bit_allocation import allocate_bits
from edgeslim.quant.config import PTQConfig
from edgeslim.quant.fake_quant import QUANT_LAYERS, FakeQuantize, _QuantWeight, fake_quantizers
from edgeslim.quant.graph import Placement, insert_activation_quantizers


@dataclass
class QuantizedModel:
    """A fake-quantized model, its BN-folded float reference and what was done."""

    model: nn.Module
    float_model: nn.Module
    config: PTQConfig
    graph_mode: str  # "export" (ORT's points on the torch.export capture) or "module"
    input_quantizer_of: dict[str, str] = field(default_factory=dict)
    bias_shifts: dict[str, float] = field(default_factory=dict)
    graph_note: str = ""  # why graph_mode is "module" (capture failed, no example input)
    placement: Placement | None = None  # where the activation quantizers run (as data)

    def layers(self) -> list[str]:
        """Names of the layers whose weights are quantized."""
        return [
            n for n, m in self.model.named_modules() if isinstance(m, _QuantWeight) and m.weight_fq
        ]


def _inputs(batch) -> Tensor:
    return batch[0] if isinstance(batch, list | tuple) else batch


def prepare(model: nn.Module, config: PTQConfig, example: Tensor | None = None) -> QuantizedModel:
    """Fold, swap and insert quantizers into a copy of ``model`` (nothing calibrated yet).

    ``example`` (one input batch) is what ``torch.export`` captures the model with,
    for BN folding and for the activation quantization points. Without it, or when
    the capture fails, BN folding pairs only ``nn.Sequential`` neighbours and each
    layer's input is quantized instead (``graph_mode == "module"``), with a warning
    that is also kept in ``graph_note``.
    """
    ref = copy.deepcopy(model).eval()
    graph, note = _capture(ref, example)
    if config.fold_bn and graph is not None:
        fold_bn_(ref, example, graph=graph)
    elif config.fold_bn:
        warnings.warn(f"{note}: folding only conv->BN neighbours in nn.Sequential", stacklevel=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the reason was just given
            fold_bn_(ref)
    qm = copy.deepcopy(ref)
    for name, mod in list(qm.named_modules()):
        if type(mod) not in QUANT_LAYERS:
            continue
        wspec = config.weight_spec_for(name)
        if wspec is None:
            continue
        new = QUANT_LAYERS[type(mod)].from_float(mod, wspec)
        if config.bit_allocation:
            _allocate(new, wspec.bits)
        parent, _, child = name.rpartition(".")
        setattr(qm.get_submodule(parent) if parent else qm, child, new)
    mode, input_of, placement = "module", {}, None
    if config.activation is not None:
        if graph is not None:
            qm, placement = insert_activation_quantizers(
                qm, config.activation, example, graph=graph
            )
            input_of, mode = dict(placement.input_of), "export"
        else:
            warnings.warn(
                f"{note}: quantizing each layer's input only "
                "(residual adds, matmuls and pooling stay in float)",
                stacklevel=2,
            )
            for name, mod in qm.named_modules():
                if isinstance(mod, _QuantWeight) and mod.weight_fq is not None:
                    mod.input_fq = FakeQuantize(config.activation)
                    input_of[name] = f"{name}.input_fq"
    return QuantizedModel(
        qm.eval(), ref, config, mode, input_of, graph_note=note, placement=placement
    )


def _capture(model: nn.Module, example: Tensor | None) -> tuple[ModelGraph | None, str]:
    """The capture of ``model``, or None and why not."""
    if example is None:
        return None, "no example input to capture the model with"
    try:
        return ModelGraph.of(model, example), ""
    except EdgeslimError as e:
        return None, str(e)


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
    for layer_name, fq_name in qm.input_quantizer_of.items():
        fq = qm.model.get_submodule(fq_name)
        if fq.quantizing and fq.per_tensor_int_range is not None:
            qm.model.get_submodule(layer_name).set_bias_scale(fq.scale)
    return seen


def quantize_ptq(
    model: nn.Module,
    data: Iterable | None,
    config: PTQConfig | None = None,
    progress: bool = True,
    *,
    example: Tensor | None = None,
) -> QuantizedModel:
    """Post-training quantize a copy of ``model`` with calibration ``data``.

    Args:
        model: a float model (not modified).
        data: an iterable of batches (``(x, y)`` or ``x``); may be None for weight-only.
        config: the :class:`PTQConfig` (default: W8A8, per-channel weights, min-max).
        progress: show progress bars.
        example: an input to capture the model with (default: the first batch of
            ``data``); weight-only runs without data need it to fold BN by graph.

    Example:
        >>> from edgeslim.models import build_zoo_model
        >>> m = build_zoo_model("resnet20")
        >>> qm = quantize_ptq(m, [torch.randn(8, 3, 32, 32)], PTQConfig(calib_batches=1),
        ...                   progress=False)
        >>> qm.graph_mode, len(qm.layers())
        ('export', 22)
    """
    config = config or PTQConfig()
    if example is None and data is not None:
        example = next((_inputs(b) for b in data), None)
        if isinstance(example, Tensor) and example.dim() > 0:
            example = example[:2]  # the capture depends on shapes, not on the batch size
    qm = prepare(model, config, example)
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
    return qm
