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
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn
from tqdm import tqdm

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.finite import check_finite_model, check_finite_tensor
from edgeslim.core.layer_types import layer_type_of
from edgeslim.core.methods import LayerPlan, Method, register_method
from edgeslim.core.modes import eval_mode
from edgeslim.core.select import swap_module_
from edgeslim.fuse.conv_bn import fold_bn_
from edgeslim.graph.calls import ModelGraph
from edgeslim.quant.bias_correction import bias_correct_
from edgeslim.quant.bit_allocation import allocate_bits
from edgeslim.quant.config import PTQConfig
from edgeslim.quant.fake_quant import FakeQuantize, _QuantWeight, fake_quantizers
from edgeslim.quant.graph import Placement, attach_quantizers_, place


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


def quantizable(module: nn.Module) -> bool:
    """True when ``module``'s exact type has a fake-quant twin in the layer-type table."""
    entry = layer_type_of(type(module))
    return entry is not None and entry.twin is not None


@dataclass
class Prepared:
    """What :func:`prepare_` did: the root, how activations are placed, and why."""

    model: nn.Module
    graph_mode: str
    input_of: dict[str, str]
    note: str = ""
    placement: Placement | None = None
    folded: list[tuple[str, str]] = field(default_factory=list)  # (conv, BN) names


def prepare_(
    model: nn.Module,
    config: PTQConfig,
    layers: LayerPlan | None = None,
    *,
    example: Tensor | None = None,
    placement: Placement | None = None,
    graph: ModelGraph | None = None,
    folded: list[tuple[str, str]] | None = None,
) -> Prepared:
    """Fold, swap and insert quantizers into ``model`` in place (nothing calibrated yet).

    ``layers`` chooses the config of each layer (default: ``config`` everywhere);
    within it, :meth:`PTQConfig.weight_spec_for` still applies ``exclude`` and the
    weight-spec overrides. ``example`` (one input batch) is what ``torch.export``
    captures the model with, for BN folding and for the activation quantization
    points (``graph``: a capture of it made already, e.g. before BN folding);
    ``placement`` and ``folded`` replay points and ``(conv, BN)`` folds found
    before (a saved model's reload: no capture, no data).
    Without either, or when the capture fails, BN folding pairs only
    ``nn.Sequential`` neighbours and each layer's input is quantized instead
    (``graph_mode == "module"``), with a warning that is also kept in ``note``.
    The model keeps its class; the same call on the same architecture yields the
    same module names (what a reload relies on).
    """
    layers = layers or LayerPlan(config)
    note = "placement replayed" if placement is not None else ""
    needs_graph = (config.fold_bn and folded is None) or (
        config.activation is not None and placement is None
    )
    if graph is None and needs_graph:
        graph, note = _capture(model, example)
    if config.fold_bn:
        folded = _fold(model, graph, example, note, folded)
    for name, mod, cfg in layers.select(model, quantizable):
        wspec = cfg.weight_spec_for(name)
        if wspec is None or not name:  # the root itself cannot be swapped in place
            continue
        new = layer_type_of(type(mod)).twin_class().from_float(mod, wspec)
        if cfg.bit_allocation:
            _allocate(new, wspec.bits)
        swap_module_(model, name, new)
        layers.done(name, cfg)
    mode, input_of = "module", {}
    if config.activation is not None:
        if placement is None and graph is not None:
            placement = place(model, graph, example)
            for n in placement.notes:
                warnings.warn(n, stacklevel=2)
        if placement is not None:
            attach_quantizers_(model, placement, config.activation)
            input_of, mode = dict(placement.input_of), "export"
        else:
            warnings.warn(
                f"{note}: quantizing each layer's input only "
                "(residual adds, matmuls and pooling stay in float)",
                stacklevel=2,
            )
            for name, mod in model.named_modules():
                if isinstance(mod, _QuantWeight) and mod.weight_fq is not None:
                    mod.input_fq = FakeQuantize(config.activation)
                    input_of[name] = f"{name}.input_fq"
    link_bias_scales(model, input_of)
    note = "" if mode == "export" else note
    return Prepared(model.eval(), mode, input_of, note, placement, list(folded or []))


def _fold(
    model: nn.Module,
    graph: ModelGraph | None,
    example: Tensor | None,
    note: str,
    pairs: list[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    if pairs is not None:
        return fold_bn_(model, pairs=pairs)
    if graph is not None:
        return fold_bn_(model, example, graph=graph)
    warnings.warn(f"{note}: folding only conv->BN neighbours in nn.Sequential", stacklevel=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reason was just given
        return fold_bn_(model)


def link_bias_scales(model: nn.Module, input_of: dict[str, str]) -> None:
    """Tie each layer's int32 bias scale to its input quantizer (``s_x * s_w``, kept live)."""
    for layer_name, fq_name in input_of.items():
        model.get_submodule(layer_name).link_input_quantizer(model.get_submodule(fq_name))


def prepare(model: nn.Module, config: PTQConfig, example: Tensor | None = None) -> QuantizedModel:
    """Fold, swap and insert quantizers into a copy of ``model`` (nothing calibrated yet).

    See :func:`prepare_`; the float reference (BN folded the same way) is kept for
    bias correction and comparisons.
    """
    ref = copy.deepcopy(model).eval()
    graph, note = _capture(ref, example)
    if config.fold_bn:
        _fold(ref, graph, example, note)
    p = prepare_(copy.deepcopy(ref), replace(config, fold_bn=False), example=example, graph=graph)
    return QuantizedModel(
        p.model, ref, config, p.graph_mode, p.input_of, graph_note=p.note, placement=p.placement
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

    A batch holding NaN or Inf, or activations that overflow to NaN or Inf, is an
    :class:`EdgeslimError` naming the batch or the quantizer. A quantizer that saw only
    zeros (a dead ReLU, a constant-zero branch: a zero range) gets scale 1.0, as ONNX
    Runtime's calibrator does, with a warning naming it: the minimum scale that range
    would give (1e-12) would crush every later non-zero value to 0.

    Returns the number of batches seen.
    """
    named = [(n, fq) for n, fq in fake_quantizers(qm.model) if fq.observing]
    act = [fq for _, fq in named]
    for fq in act:
        fq.observing, fq.quantizing = True, False
    seen = 0
    with torch.no_grad(), eval_mode(qm.model):
        it = tqdm(data, total=batches, desc="calibrate", leave=False, disable=not progress)
        for batch in it:
            if seen >= batches:
                break
            x = _inputs(batch)
            check_finite_tensor(x, f"calibration batch {seen + 1}")
            qm.model(x)
            seen += 1
    if seen == 0 and act:
        raise EdgeslimError("calibration data is empty")
    for name, fq in named:
        if fq.observer.observed:
            _check_range(name, fq)
            fq.freeze()
            _zero_range_fallback(name, fq)
        else:  # never reached (e.g. a dead branch): stay transparent
            fq.observing = fq.quantizing = False
    # the runtime adds each bias as int32 at s_x * s_w: simulate it now that s_x is known
    link_bias_scales(qm.model, qm.input_quantizer_of)
    return seen


def _check_range(name: str, fq: FakeQuantize) -> None:
    obs = fq.observer
    if not (bool(torch.isfinite(obs.min_val).all()) and bool(torch.isfinite(obs.max_val).all())):
        raise EdgeslimError(
            f"activations at {name} reached NaN or Inf during calibration "
            "(an overflowing layer, or NaN weights); cannot choose a scale"
        )


def _zero_range_fallback(name: str, fq: FakeQuantize) -> None:
    obs = fq.observer
    if fq.spec.granularity == "group" or bool((obs.min_val != 0).any() | (obs.max_val != 0).any()):
        return
    fq._set_qparams(torch.ones_like(fq.scale), fq.zero_point)
    fq._cache_scalars()
    warnings.warn(
        f"{name}: every calibration activation was 0 (zero range); using scale 1.0",
        stacklevel=3,
    )


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
    check_finite_model(model, "model to quantize")
    qm = prepare(model, config, example if example is not None else _example(data))
    _calibrate_and_correct(qm, data, config, progress)
    return qm


def _example(data: Iterable | None) -> Tensor | None:
    """A 2-sample batch of ``data`` to capture with (the capture depends on shapes only)."""
    example = next((_inputs(b) for b in data), None) if data is not None else None
    if isinstance(example, Tensor) and example.dim() > 0:
        example = example[:2]
    return example


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
        check_finite_model(model, "model to quantize")
        example = _example(calib)
        graph, note = _capture(model, example)
        folded = _fold(model, graph, example, note) if config.fold_bn else []
        ref = copy.deepcopy(model).eval() if config.bias_correction else None
        p = prepare_(model, replace(config, fold_bn=False), layers, example=example, graph=graph)
        qm = QuantizedModel(p.model, ref, config, p.graph_mode, p.input_of, graph_note=p.note)
        _calibrate_and_correct(qm, calib, config, progress=False)
        return p.model, {
            "graph_mode": p.graph_mode,
            "graph_note": p.note,
            "quantized_layers": len(layers.applied),
            "bias_shifts": qm.bias_shifts,
            "folded_bn": [list(pair) for pair in folded],
            "placement": p.placement.to_dict() if p.placement is not None else None,
        }

    def restore_(self, model, config, layers, details):
        placement = details.get("placement")
        return prepare_(
            model,
            config,
            layers,
            folded=[tuple(pair) for pair in details.get("folded_bn", [])],
            placement=Placement.from_dict(placement) if placement else None,
        ).model
