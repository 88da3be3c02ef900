"""The sparsifier, shaped like an optimizer: ``prepare`` / ``step`` / ``squash``
(after ``torch.ao.pruning.BaseSparsifier``).

``prepare(model)`` applies a sparsity kind through :func:`edgeslim.core.methods.apply_`
(masks as parametrizations, a record that replays on reload); with an
:class:`~edgeslim.sparsity.schedule.AGPSchedule`, ``step()`` after each optimizer
step recomputes the masks at the schedule's sparsity on its pruning steps;
``squash()`` removes the parametrizations, keeping the zeros.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from edgeslim.sparsity import AGPSchedule, MagnitudeConfig, Sparsifier
    >>> model = nn.Sequential(nn.Linear(20, 20))
    >>> sp = Sparsifier(MagnitudeConfig(0.9), schedule=AGPSchedule(0.9, steps=3))
    >>> _ = sp.prepare(model)
    >>> [round(sp.step(), 3) for _ in range(4)]
    [0.632, 0.868, 0.9, 0.9]
    >>> int((sp.squash()[0].weight == 0).sum())
    360
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import Applied, FilterFn, Overrides, Record, apply_, method_for
from edgeslim.core.select import matches
from edgeslim.sparsity.mask import sparsity_of, squash_
from edgeslim.sparsity.method import MaskMethod, SparsityConfig
from edgeslim.sparsity.schedule import AGPSchedule


class Sparsifier:
    """Masks ``model``'s layers as ``config`` says, optionally on an AGP schedule.

    Args:
        config: a sparsity config (magnitude, N:M, R-TOSS).
        schedule: an AGP schedule; only for configs with a ``sparsity`` field
            (the schedule's ``final`` is then that sparsity; per-layer overrides
            follow the same curve to their own sparsity).
        overrides: per-layer configs (see :func:`edgeslim.core.methods.apply_`).
        filter_fn: ``filter_fn(module, name) -> bool``; False leaves a layer dense.
    """

    def __init__(
        self,
        config: SparsityConfig,
        *,
        schedule: AGPSchedule | None = None,
        overrides: Overrides | None = None,
        filter_fn: FilterFn | None = None,
    ) -> None:
        handler = method_for(config)
        if not isinstance(handler, MaskMethod):
            raise EdgeslimError(f"{type(config).__name__} is not a sparsity config")
        if schedule is not None:
            names = {f.name for f in dataclasses.fields(config)}
            if "sparsity" not in names:
                raise EdgeslimError(
                    f"{type(config).__name__} has a fixed sparsity: an AGP schedule needs "
                    "a kind whose sparsity is a parameter (magnitude)"
                )
            schedule = dataclasses.replace(schedule, final=config.sparsity)
        self.config, self.schedule, self.handler = config, schedule, handler
        items = overrides.items() if isinstance(overrides, Mapping) else overrides or ()
        self.overrides = [(p, c) for p, c in items]
        self.filter_fn = filter_fn
        self.model: nn.Module | None = None
        self.record: Record | None = None
        self.t = 0
        self._finals: dict[str, SparsityConfig] = {}

    def _at(self, cfg: SparsityConfig, t: int) -> SparsityConfig:
        if self.schedule is None:
            return cfg
        return dataclasses.replace(cfg, sparsity=self.schedule.sparsity_at(t, cfg.sparsity))

    def prepare(self, model: nn.Module, calib=None) -> Applied:
        """Put the masks on ``model`` in place (at the schedule's step 0); returns the record.

        ``calib`` is calibration data for kinds that score with it (Taylor).
        """
        if self.model is not None:
            raise EdgeslimError("this sparsifier is already prepared")
        cfg = self._at(self.config, 0)
        overrides = [(p, None if c is None else self._at(c, 0)) for p, c in self.overrides]
        applied = apply_(model, cfg, overrides=overrides, filter_fn=self.filter_fn, calib=calib)
        self.model, self.record = applied.model, applied.record
        self._finals = {n: self._final_of(n, c) for n, c in self.record.layers.items()}
        self._relabel(0)
        return applied

    def _final_of(self, name: str, cfg: SparsityConfig) -> SparsityConfig:
        """The layer's config at the end of the schedule (its override, or the main config)."""
        if self.schedule is None:
            return cfg
        for pattern, c in self.overrides:
            if matches(name, pattern):
                return c if c is not None else cfg
        return self.config

    def _relabel(self, t: int) -> None:
        rec = self.record
        rec.config = self._at(self.config, t)
        rec.layers = {n: self._at(c, t) for n, c in self._finals.items()}
        rec.details["sparsity"] = sparsity_of(self.model, list(rec.layers))
        rec.details["step"] = t

    def step(self) -> float:
        """Advance one optimizer step; on a pruning step recompute masks. Returns the sparsity."""
        if self.model is None:
            raise EdgeslimError("call prepare(model) before step()")
        self.t += 1
        if self.schedule is not None and self.schedule.is_update(self.t):
            layers = {n: self._at(c, self.t) for n, c in self._finals.items()}
            self.handler.update_(self.model, layers)
            self._relabel(self.t)
        # masks only change on pruning steps (training cannot revive a masked weight)
        return self.record.details["sparsity"]

    def squash(self) -> nn.Module:
        """Remove the masks, keeping the zeros; the model is plain layers again."""
        if self.model is None:
            raise EdgeslimError("call prepare(model) before squash()")
        return squash_(self.model)

    def state_dict(self) -> dict:
        return {"step": self.t}

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["step"])
