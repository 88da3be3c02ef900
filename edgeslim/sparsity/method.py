"""The shared handler shape of every sparsity kind: compute masks, put them on as parametrizations.

A kind is a frozen config (a :class:`SparsityConfig`) plus a :class:`MaskMethod`
subclass registered with :func:`edgeslim.core.methods.register_method` that only
says how masks are computed (:meth:`MaskMethod.masks`) and which layers it
supports. Applying, replaying on reload (``restore_`` puts all-ones masks back so
that the saved ``state_dict`` loads strictly) and recomputing masks for a
schedule (:class:`edgeslim.sparsity.sparsifier.Sparsifier`) are written once, here.
"""

from __future__ import annotations

from torch import Tensor, nn

from edgeslim.core.methods import LayerPlan, Method, MethodConfig
from edgeslim.models.spec import LoadedModel
from edgeslim.sparsity.mask import (
    add_mask_,
    base_type,
    mask_of,
    masked_layers,
    sparsity_of,
    squashed,
)


class SparsityConfig(MethodConfig):
    """Base of every sparsity config (a frozen dataclass); ``kind`` names it in reports."""

    kind: str = ""


class MaskMethod(Method):
    """A sparsity kind: subclasses implement :meth:`masks` and may narrow :meth:`supports`."""

    def supports(self, module: nn.Module) -> bool:
        """True for layers this kind masks (default: Conv2d and Linear, masked or not)."""
        return base_type(module) in (nn.Conv2d, nn.Linear)

    def masks(
        self, weights: dict[str, Tensor], configs: dict[str, MethodConfig]
    ) -> tuple[dict[str, Tensor], dict]:
        """0/1 masks for ``weights`` (``{layer: weight}``) and JSON details.

        A layer missing from the result is left unmasked (say why in the details).
        """
        raise NotImplementedError

    def scores(
        self, model: nn.Module, configs: dict[str, MethodConfig], calib
    ) -> dict[str, Tensor]:
        """What :meth:`masks` ranks, per layer of ``configs`` (default: the masked weights).

        ``calib`` is the calibration data on a first application and None on a
        schedule's update (where a kind may use the last training step's gradients).
        """
        mods = dict(model.named_modules())
        return {n: mods[n].weight.detach() for n in configs}

    def apply_(self, model, config, layers: LayerPlan, calib):
        picked = list(layers.select(model, self.supports))
        configs = {n: c for n, _, c in picked}
        masks, details = self.masks(self.scores(model, configs, calib), configs)
        for name, mod, cfg in picked:
            if name in masks:
                add_mask_(mod, masks[name])
                layers.done(name, cfg)
        details = dict(details)
        details["kind"] = config.kind
        details["sparsity"] = sparsity_of(model, list(layers.applied))
        return model, details

    def restore_(self, model, config, layers: LayerPlan, details):
        for _, mod, _cfg in layers.select(model, self.supports):
            if mask_of(mod) is None:
                add_mask_(mod)  # values come from the state_dict
        return model

    def update_(self, model: nn.Module, layers: dict[str, MethodConfig]) -> dict:
        """Recompute the masks of ``layers`` (``{name: config}``) from the masked weights.

        Scores see the weights already masked, so an entry once pruned scores zero
        and stays pruned (sparsity only grows, as in Zhu & Gupta's schedule).
        """
        mods = dict(model.named_modules())
        masks, details = self.masks(self.scores(model, dict(layers), None), dict(layers))
        for name, m in masks.items():
            add_mask_(mods[name], m)
        return details


def is_sparsity_record(record: dict) -> bool:
    """True when a saved-model method record (``Record.to_dict()``) is a sparsity kind."""
    from edgeslim.core.methods import METHODS

    name = record.get("method")
    return name in METHODS and isinstance(METHODS.get(name), MaskMethod)


def squash_loaded(lm: LoadedModel) -> LoadedModel:
    """A copy of ``lm`` with its masks squashed and its sparsity records dropped.

    For methods that swap plain layers (PTQ's fake-quant twins): they see the
    zeros as ordinary weights (symmetric or integer-zero-point INT8 keeps 0
    exact), and the saved result reloads without replaying masks that are gone.
    Fine-tuning the result no longer holds the zeros at zero.
    """
    if not masked_layers(lm.model):
        return lm
    methods = [r for r in lm.methods if not is_sparsity_record(r)]
    meta = {**lm.meta, "sparsity_squashed": True}
    return LoadedModel(squashed(lm.model), lm.source, lm.input, lm.name, meta, methods)
