"""The loop every factorization shares: pick layers, factorize, swap, record; and its replay.

A factorization is two functions of one layer:

* ``factorize(module, config) -> Factorized``: the replacement ``nn.Sequential``
  with its weights, the rank it used and the relative weight error;
* ``structure(module, rank) -> nn.Sequential``: the same replacement with
  untrained weights, which is all a reload needs (the values come from the
  saved weights).

:func:`apply_layers_` runs the first over the layers a :class:`LayerPlan`
selects and records each layer's rank in the method's details;
:func:`restore_layers_` runs the second with those ranks, so a saved
decomposed model reloads by replaying its method (:mod:`edgeslim.models.saved`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError, UnsupportedLayerError
from edgeslim.core.methods import LayerPlan, Method
from edgeslim.core.select import swap_module_

Rank = int | tuple[int, ...]


@dataclass
class Factorized:
    """One layer's replacement and what it cost.

    Attributes:
        module: the replacement (an ``nn.Sequential`` of plain conv / linear layers).
        rank: the rank kept (a tuple for Tucker-2: output then input rank).
        params_before: weights + bias of the layer.
        params_after: weights + biases of the replacement.
        rel_error: ``||W - W_hat||_F / ||W||_F`` of the weight the replacement computes.
        extra: method-specific facts (CP's iterations, energy kept, ...).
    """

    module: nn.Module
    rank: Rank
    params_before: int
    params_after: int
    rel_error: float
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "rank": list(self.rank) if isinstance(self.rank, tuple) else self.rank,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "rel_error": self.rel_error,
            **self.extra,
        }


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def like(new: nn.Module, old: nn.Module) -> nn.Module:
    """``new`` on ``old``'s device and dtype, in ``old``'s train/eval mode."""
    w = old.weight
    return new.to(device=w.device, dtype=w.dtype).train(old.training)


def as_numpy(t: torch.Tensor):
    """A float64 numpy copy (factorizations run in double precision, then cast back)."""
    return t.detach().to("cpu", torch.float64).numpy()


def one_blas_thread():
    """A context with BLAS on one thread: these matrices are small, and OpenBLAS threads
    spinning on a shared CPU made a CP fit 70x slower (20 s instead of 0.3 s)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def explicitly_named(layers: LayerPlan, name: str) -> bool:
    """True when an override names ``name`` exactly (then a refusal is an error, not a skip)."""
    return any(p == name and c is not None for p, c in layers.overrides)


def apply_layers_(
    model: nn.Module,
    layers: LayerPlan,
    supported: tuple[type, ...],
    factorize: Callable[[nn.Module, Any], Factorized],
) -> tuple[nn.Module, dict]:
    """Factorize every selected layer of ``model`` in place; return the model and details.

    A layer the method cannot take (grouped conv, 1x1 kernel, ...) or whose factors
    would not be smaller is left alone with the reason in ``details["skipped"]``;
    when an override names that layer exactly, its refusal raises instead.
    """
    done: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for name, mod, cfg in layers.select(model, supported):
        if not name:
            skipped["(root)"] = "the root module cannot be swapped in place"
            continue
        try:
            with one_blas_thread():
                res = factorize(mod, cfg)
        except UnsupportedLayerError as e:
            if explicitly_named(layers, name):
                raise UnsupportedLayerError(f"layer {name!r}: {e}") from None
            skipped[name] = str(e)
            continue
        if res.params_after >= res.params_before and not cfg.rule.allow_larger:
            skipped[name] = (
                f"rank {res.rank} needs {res.params_after} parameters, the layer has "
                f"{res.params_before} (set allow_larger to factorize anyway)"
            )
            continue
        swap_module_(model, name, like(res.module, mod))
        layers.done(name, cfg)
        done[name] = res.to_dict()
    before = sum(d["params_before"] for d in done.values())
    after = sum(d["params_after"] for d in done.values())
    return model, {
        "layers": done,
        "skipped": skipped,
        "params_before": before,
        "params_after": after,
    }


def restore_layers_(
    model: nn.Module,
    layers: LayerPlan,
    details: dict,
    structure: Callable[[nn.Module, Rank], nn.Module],
) -> nn.Module:
    """Swap in the untrained structure of every layer :func:`apply_layers_` factorized."""
    ranks = details.get("layers", {})
    for name, mod, _cfg in layers.select(model, lambda m: True):
        if name not in ranks:
            raise EdgeslimError(f"layer {name!r} has no recorded rank")
        r = ranks[name]["rank"]
        new = structure(mod, tuple(r) if isinstance(r, list) else int(r))
        swap_module_(model, name, like(new, mod))
        layers.done(name, _cfg)
    return model


def check_conv(conv: nn.Module, *, min_kernel: int = 1) -> None:
    """Raise :class:`UnsupportedLayerError` unless ``conv`` is a plain 2-D convolution.

    Plain: ``nn.Conv2d``, ``groups == 1``, zero padding given as numbers, and (when
    ``min_kernel`` > 1) a kernel of at least that size on some side.
    """
    if type(conv) is not nn.Conv2d:
        raise UnsupportedLayerError(f"{type(conv).__name__} is not an nn.Conv2d")
    if conv.groups != 1:
        raise UnsupportedLayerError(f"grouped convolution (groups={conv.groups}) is not supported")
    if conv.padding_mode != "zeros":
        raise UnsupportedLayerError(f"padding_mode {conv.padding_mode!r}: only zero padding")
    if isinstance(conv.padding, str):
        raise UnsupportedLayerError(f"padding={conv.padding!r}: give the padding as numbers")
    if max(conv.kernel_size) < min_kernel:
        raise UnsupportedLayerError(
            f"{conv.kernel_size[0]}x{conv.kernel_size[1]} kernel: nothing to factorize spatially"
        )


def check_linear(linear: nn.Module) -> None:
    if type(linear) is not nn.Linear:
        raise UnsupportedLayerError(f"{type(linear).__name__} is not an nn.Linear")


def relative_error(w: torch.Tensor, w_hat: torch.Tensor) -> float:
    """``||w - w_hat||_F / ||w||_F`` in float64 (0 for an all-zero ``w`` reproduced exactly)."""
    w, w_hat = w.detach().double().cpu(), w_hat.detach().double().cpu()
    den = float(w.norm())
    num = float((w - w_hat).norm())
    return num / den if den > 0 else num


class Factorization(Method):
    """A registered factorization: its layer types and its three functions of one layer.

    Subclasses set ``supported``, ``factorize``, ``structure`` and ``rank_of`` (as
    ``staticmethod``); applying and replaying are this class's, the same for all.
    """

    supported: tuple[type[nn.Module], ...] = ()
    factorize: Callable
    structure: Callable
    rank_of: Callable

    def apply_(self, model, config, layers, calib):
        return apply_layers_(model, layers, self.supported, self.factorize)

    def restore_(self, model, config, layers, details):
        return restore_layers_(model, layers, details, self.structure)
