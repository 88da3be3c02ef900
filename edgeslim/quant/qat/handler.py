"""The handler all QAT methods share: swap in QAT twins, calibrate the quantizers, replay on load.

Each method file registers a subclass of :class:`QATMethod` for its config
(``@register_method(LSQConfig, "qat_lsq")``); the subclass is empty, the config
says which quantizers to build. ``apply_`` pairs each conv with the BatchNorm
that directly follows it (``torch.export`` capture, :func:`edgeslim.fuse.conv_bn.conv_bn_pairs`),
moves the BN into the QAT twin (its old place becomes ``nn.Identity``),
initialises every weight quantizer from its (folded) weight and every
activation quantizer from ``calib_batches`` batches of ``calib``. ``restore_``
rebuilds the same structure with no data; the ``state_dict`` then brings the
trained weights, scales, clipping levels and BN statistics back.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import LayerPlan, Method
from edgeslim.core.modes import eval_mode
from edgeslim.core.select import swap_module_
from edgeslim.fuse.conv_bn import conv_bn_pairs
from edgeslim.quant.qat.common import QATConfig
from edgeslim.quant.qat.layers import QAT_TWINS, qat_layers


def _inputs(batch) -> Tensor:
    return batch[0] if isinstance(batch, list | tuple) else batch


def _first_batch(calib: Iterable | None) -> Tensor | None:
    if calib is None:
        return None
    x = next((_inputs(b) for b in calib), None)
    return x[:2] if isinstance(x, Tensor) and x.dim() > 0 else x


def swap_in_twins_(
    model: nn.Module, layers: LayerPlan, pairs: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Swap every selected conv/linear for its QAT twin, BN moved inside; returns the pairs used."""
    bn_of = dict(pairs)
    used = []
    for name, mod, cfg in layers.select(model, tuple(QAT_TWINS)):
        if not name or cfg.excluded(name):
            continue
        bn = None
        if name in bn_of:
            bn = swap_module_(model, bn_of[name], nn.Identity())
            used.append((name, bn_of[name]))
        new = QAT_TWINS[type(mod)].from_float(
            mod, bn, cfg.weight_quantizer(mod), cfg.activation_quantizer()
        )
        swap_module_(model, name, new)
        layers.done(name, cfg)
    return used


def calibrate_qat_(model: nn.Module, calib: Iterable | None, batches: int) -> int:
    """Initialise the quantizers: weights from their folded weight, inputs on ``batches`` batches.

    When a weight quantizer changes the scale of its weights (``rescales``: DoReFa),
    the BatchNorm layers left unfolded get their running statistics re-estimated on
    the same batches first, so that the inputs observed next have the scale they
    will have in training. Returns the number of batches seen.
    """
    acts = []
    rescaled = False
    for _, layer in qat_layers(model):
        if layer.weight_q is not None:
            with torch.no_grad():
                layer.weight_q.calibrate_on(layer.folded()[0])
            rescaled = rescaled or layer.weight_q.rescales
        if layer.input_q is not None:
            layer.input_q.calibrating = True
            acts.append(layer.input_q)
    if rescaled and calib is not None:
        reestimate_bn_(model, calib, batches)  # the inputs pass through unquantized
        for q in acts:
            q.forget_()
    if not acts:
        return 0
    return observe_inputs_(model, acts, calib, batches)


@torch.no_grad()
def reestimate_bn_(model: nn.Module, calib: Iterable, batches: int) -> int:
    """Running statistics of the BatchNorm layers not folded into a QAT twin, over ``batches``.

    Only those BN buffers change; every module's mode is restored. Returns the
    number of batches seen.
    """
    owned = {id(layer.bn) for _, layer in qat_layers(model) if layer.bn is not None}
    bns = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in owned
    ]
    if not bns:
        return 0
    momenta = {m: m.momentum for m in bns}
    seen = 0
    try:
        with eval_mode(model):
            for m in bns:
                m.reset_running_stats()
                m.momentum = None  # the average over the batches seen
                m.train()
            for batch in calib:
                if seen >= batches:
                    break
                model(_inputs(batch))
                seen += 1
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
    if seen == 0:
        raise EdgeslimError("QAT calibration data is empty")
    return seen


def observe_inputs_(model: nn.Module, quantizers: list, calib: Iterable | None, batches: int):
    """Run ``batches`` batches through ``model`` while ``quantizers`` observe, then init them.

    Returns the number of batches seen.
    """
    if calib is None:
        raise EdgeslimError("QAT with quantized activations needs calibration data")
    for q in quantizers:
        q.calibrating = True
    seen = 0
    with torch.no_grad(), eval_mode(model):
        for batch in calib:
            if seen >= batches:
                break
            model(_inputs(batch))
            seen += 1
    if seen == 0:
        raise EdgeslimError("QAT calibration data is empty")
    for q in quantizers:
        if q._lo is None:  # a layer the data never reached: keep it transparent
            q.calibrating = False
            raise EdgeslimError("a quantized layer was not reached by the calibration data")
        q.init_()
    return seen


class QATMethod(Method):
    """Shared ``apply_`` / ``restore_`` of every QAT config (see the module docstring)."""

    def apply_(self, model, config: QATConfig, layers, calib):
        pairs: list[tuple[str, str]] = []
        if config.fold_bn:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # falls back to Sequential neighbours
                pairs = conv_bn_pairs(model, _first_batch(calib))
        used = swap_in_twins_(model, layers, pairs)
        seen = calibrate_qat_(model, calib, config.calib_batches)
        return model, {
            "bn_pairs": [list(p) for p in used],
            "quantized_layers": len(layers.applied),
            "calib_batches": seen,
        }

    def restore_(self, model, config, layers, details):
        pairs = [(str(c), str(b)) for c, b in details.get("bn_pairs", [])]
        swap_in_twins_(model, layers, pairs)
        return model


def freeze_(model: nn.Module, config: QATConfig, epoch: int) -> dict[str, bool]:
    """Apply ``freeze_bn_epoch`` / ``freeze_observer_epoch`` for an epoch about to start.

    Returns what is frozen now. Call it before each epoch (the trainer's
    ``on_epoch`` hook runs after one: pass the number of epochs done).
    """
    bn = config.freeze_bn_epoch is not None and epoch >= config.freeze_bn_epoch
    obs = config.freeze_observer_epoch is not None and epoch >= config.freeze_observer_epoch
    for _, layer in qat_layers(model):
        if bn:
            layer.freeze_bn_(True)
        if obs:
            for q in (layer.weight_q, layer.input_q):
                if q is not None:
                    q.freeze_observer_()
    return {"bn": bn, "observers": obs}
