"""Unstructured sparsity by first-order Taylor scores (Molchanov et al. 2019, "Importance
Estimation for Neural Network Pruning"), per weight.

Removing weight ``w`` changes the loss by about ``g·w`` (``g = ∂L/∂w``); its
importance is ``(g·w)²`` averaged over ``batches`` calibration batches, and the
``round(s * n)`` least important weights are zeroed, per layer or globally.
Under an AGP schedule (:class:`~edgeslim.sparsity.Sparsifier`), each pruning step
scores with the gradients of the last training step instead.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import register_method
from edgeslim.core.modes import eval_mode
from edgeslim.sparsity.magnitude import magnitude_masks
from edgeslim.sparsity.method import MaskMethod, SparsityConfig
from edgeslim.tasks import get_task


@dataclass(frozen=True)
class TaylorConfig(SparsityConfig):
    """Zero the fraction ``sparsity`` of weights with the smallest ``(∂L/∂w · w)²``.

    Args:
        sparsity: target fraction of zero weights, in [0, 1).
        scope: ``"layer"`` or ``"global"`` (one ranking over all selected layers).
        batches: calibration batches the scores are averaged over.
        task: the task whose loss is differentiated (:mod:`edgeslim.tasks`).
    """

    kind: ClassVar[str] = "taylor"
    sparsity: float = 0.5
    scope: str = "layer"
    batches: int = 4
    task: str = "classification"

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise EdgeslimError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.scope not in ("layer", "global"):
            raise EdgeslimError(f"taylor scope must be 'layer' or 'global', got {self.scope!r}")
        if self.batches < 1:
            raise EdgeslimError(f"taylor needs >= 1 calibration batch, got {self.batches}")


def _leaf(module: nn.Module) -> Tensor:
    """The trainable tensor behind ``module.weight`` (a mask's ``original``, or the weight)."""
    if hasattr(module, "parametrizations") and "weight" in module.parametrizations:
        return module.parametrizations.weight.original
    return module.weight


def taylor_scores(
    model: nn.Module, names: list[str], data, batches: int, task: str = "classification"
) -> dict[str, Tensor]:
    """``(g·w)²`` of the (masked) weights of ``names``, averaged over ``batches`` of ``data``.

    Run in eval mode (BatchNorm statistics stay as they are); gradients of the
    model's parameters are left untouched.
    """
    t = get_task(task)
    mods = dict(model.named_modules())
    leaves = [_leaf(mods[n]) for n in names]
    scores = [torch.zeros_like(p) for p in leaves]
    seen = 0
    with eval_mode(model):
        for batch in itertools.islice(data, batches):
            x, y = t.to_device(batch, leaves[0].device)
            loss = t.loss(t.forward(model, x), y, 0.0)
            grads = torch.autograd.grad(loss, leaves, allow_unused=True)
            for s, n, g in zip(scores, names, grads, strict=True):
                if g is not None:
                    s += (g * mods[n].weight.detach()) ** 2
            seen += 1
    if not seen:
        raise EdgeslimError("taylor scores need calibration data: it is empty")
    return {n: s / seen for n, s in zip(names, scores, strict=True)}


@register_method(TaylorConfig, "taylor_sparsity")
class TaylorSparsity(MaskMethod):
    """``calib`` (batches of ``(x, y)``) is required on a first application."""

    def scores(self, model, configs, calib):
        names = list(configs)
        if not names:
            return {}
        if calib is not None:
            cfg = next(iter(configs.values()))
            return taylor_scores(model, names, calib, cfg.batches, cfg.task)
        mods = dict(model.named_modules())
        grads = {n: _leaf(mods[n]).grad for n in names}
        if any(g is None for g in grads.values()):
            raise EdgeslimError("taylor needs gradients: step the sparsifier after a backward pass")
        return {n: (grads[n] * mods[n].weight.detach()) ** 2 for n in names}

    def apply_(self, model, config, layers, calib):
        if calib is None:
            raise EdgeslimError("taylor scores need calibration batches (calib=...)")
        return super().apply_(model, config, layers, calib)

    def masks(self, weights, configs):
        return magnitude_masks(weights, configs)
