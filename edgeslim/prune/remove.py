"""Physical channel removal, and its oracle: the masked dense model.

:func:`remove_` slices every parameter of every layer space a plan touches, then
fixes constructor attributes (``out_channels``, ``num_features``, heads), so the
model is a plain ``nn.Module`` with smaller layers. :func:`mask_` instead zeroes
the removed channels' *input columns* in every consumer, which makes the dense
model compute exactly what the pruned one does; tests and
:func:`edgeslim.prune.structured.prune` (``verify=True``) compare the two.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode
from edgeslim.core.outputs import flatten_outputs, output_diffs
from edgeslim.graph.groups import DependencyGraph, SpaceKey
from edgeslim.graph.layers import slice_, zero_
from edgeslim.prune.allocate import Plan


def dropped_positions(graph: DependencyGraph, plan: Plan) -> dict[SpaceKey, np.ndarray]:
    """Positions removed from each layer space."""
    drops: dict[SpaceKey, list[np.ndarray]] = defaultdict(list)
    for gi, units in plan.items():
        group = graph.groups[gi]
        for u in units:
            for key, pos in group.units[int(u)].items():
                drops[key].append(pos)
    return {k: np.unique(np.concatenate(v)) for k, v in drops.items()}


def remove_(model: nn.Module, graph: DependencyGraph, plan: Plan) -> nn.Module:
    """Remove the planned channels from ``model`` in place; returns it."""
    touched = set()
    for (layer, kind), pos in dropped_positions(graph, plan).items():
        n = graph.space_sizes[(layer, kind)]
        keep = torch.as_tensor(np.setdiff1d(np.arange(n), pos), dtype=torch.long)
        if keep.numel() == 0:
            raise EdgeslimError(f"the plan removes every channel of layer {layer!r}")
        slice_(model.get_submodule(layer), graph.specs[layer], kind, keep)
        touched.add(layer)
    for path, fix in graph.post_resize.items():
        fix(model.get_submodule(path))
    return model


def mask_(model: nn.Module, graph: DependencyGraph, plan: Plan) -> nn.Module:
    """Zero, in place, every consumer's input columns of the planned channels."""
    for (layer, kind), pos in dropped_positions(graph, plan).items():
        if kind == "in":
            zero_(
                model.get_submodule(layer),
                graph.specs[layer],
                kind,
                torch.as_tensor(pos, dtype=torch.long),
            )
    return model


def max_abs_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """``(max |a(x) - b(x)|, max |a(x)|)`` in eval mode, over every output tensor."""
    diffs = output_diffs_of(a, b, x)
    if not diffs:
        return float("inf"), 1.0
    return max(d for d, _ in diffs.values()), max(s for _, s in diffs.values())


def output_diffs_of(a: nn.Module, b: nn.Module, x: torch.Tensor) -> dict[str, tuple[float, float]]:
    """Per named output (:mod:`edgeslim.core.outputs`): ``(max |a - b|, max |a|)``.

    Empty when the two models' outputs differ in number, names or shapes.
    """
    with eval_mode(a), eval_mode(b), torch.no_grad():
        ya, yb = flatten_outputs(a(x)), flatten_outputs(b(x))
    try:
        return output_diffs(ya, yb)
    except EdgeslimError:
        return {}
