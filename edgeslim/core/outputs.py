"""Model outputs as named tensors: one tensor, or tuples, lists and dicts of them, nested.

Detectors return one tensor per scale, segmenters a dict of heads; export, parity,
the pruning oracle and quantization all need the same flat view of them. This is
the one place that decides:

- the **order** of the leaves: ``torch.export``'s (sequence order, dict insertion
  order), so the i-th ONNX graph output is the i-th leaf;
- their **names**: ``output`` for a single tensor; ``output0``, ``output1``, ... for
  the items of a top-level tuple or list; a dict's keys as they are; nested levels
  join with ``_`` (``output1_0``, ``p3_boxes``);
- the **structure**, as JSON-able data (:func:`output_structure`) so that flat
  results (ONNX Runtime's list) can be put back in the model's shape
  (:func:`unflatten_outputs`).

``None`` items are skipped, as the ONNX exporter drops them; any other non-tensor
leaf is an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from edgeslim.core.errors import EdgeslimError

Structure = str | list | dict  # a leaf's name, a sequence of structures, or a dict of them
ROOT = "output"


def flatten_outputs(y: object) -> dict[str, torch.Tensor]:
    """The tensors of a model output, named and in ``torch.export`` order.

    Example:
        >>> t = torch.zeros(1)
        >>> list(flatten_outputs((t, {"a": t, "b": (t, t)})))
        ['output0', 'output1_a', 'output1_b_0', 'output1_b_1']
        >>> list(flatten_outputs({"p3": t, "p4": t})), list(flatten_outputs(t))
        (['p3', 'p4'], ['output'])
    """
    out: dict[str, torch.Tensor] = {}
    _walk(y, None, out)
    if not out:
        raise EdgeslimError(f"the model returned no tensor (got {type(y).__name__})")
    return out


def output_structure(y: object) -> Structure:
    """The shape of ``y`` with each tensor replaced by its name (JSON-able).

    Example:
        >>> t = torch.zeros(1)
        >>> output_structure((t, {"a": t}))
        ['output0', {'a': 'output1_a'}]
    """
    return _walk(y, None, {})


def unflatten_outputs(structure: Structure, values: Mapping[str, object] | Sequence) -> object:
    """Rebuild the model's output shape from flat ``values`` (by name, or in order).

    Sequences come back as tuples. Example:
        >>> unflatten_outputs(["output0", {"a": "output1_a"}], [1, 2])
        (1, {'a': 2})
    """
    if not isinstance(values, Mapping):
        names = leaf_names(structure)
        if len(names) != len(values):
            raise EdgeslimError(
                f"expected {len(names)} outputs ({', '.join(names)}), got {len(values)}"
            )
        values = dict(zip(names, values, strict=True))
    return _build(structure, values)


def leaf_names(structure: Structure) -> list[str]:
    """The names of a structure's tensors, in order."""
    if isinstance(structure, str):
        return [structure]
    items = structure.values() if isinstance(structure, dict) else structure
    return [n for s in items for n in leaf_names(s)]


def output_diffs(
    ref: Mapping[str, torch.Tensor | np.ndarray],
    got: Mapping[str, torch.Tensor | np.ndarray] | Sequence,
) -> dict[str, tuple[float, float]]:
    """Per output, ``(max |got - ref|, max |ref|)``; ``got`` by name or in ``ref``'s order.

    Raises :class:`EdgeslimError`, naming the output, when the outputs' number or a
    shape differs.

    Example:
        >>> output_diffs({"a": torch.ones(2)}, [np.zeros(2, np.float32)])
        {'a': (1.0, 1.0)}
    """
    names = list(ref)
    if not isinstance(got, Mapping):
        if len(got) != len(names):
            raise EdgeslimError(
                f"{len(got)} outputs where the model has {len(names)} ({', '.join(names)})"
            )
        got = dict(zip(names, got, strict=True))
    missing = [n for n in names if n not in got]
    if missing or len(got) != len(names):
        raise EdgeslimError(f"outputs {sorted(got)} do not match the model's {names}")
    diffs = {}
    for n in names:
        r, g = _np(ref[n]), _np(got[n])
        if r.shape != g.shape:
            raise EdgeslimError(f"output {n!r} has shape {g.shape}, expected {r.shape}")
        diff = float(np.abs(g - r).max()) if r.size else 0.0
        diffs[n] = (diff, float(np.abs(r).max()) if r.size else 0.0)
    return diffs


def _np(t: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().double().numpy()
    return np.asarray(t, dtype=np.float64)


def _walk(y: object, path: str | None, out: dict[str, torch.Tensor]) -> Structure | None:
    if isinstance(y, torch.Tensor):
        name = path or ROOT
        if name in out:
            raise EdgeslimError(f"two model outputs would both be named {name!r}")
        out[name] = y
        return name
    if y is None:
        return None
    if isinstance(y, Mapping):
        items = [(str(k), v) for k, v in y.items()]
        kids = {k: _walk(v, k if path is None else f"{path}_{k}", out) for k, v in items}
        return {k: s for k, s in kids.items() if s is not None}
    if isinstance(y, (tuple, list)):
        kids = [
            _walk(v, f"{ROOT}{i}" if path is None else f"{path}_{i}", out) for i, v in enumerate(y)
        ]
        return [s for s in kids if s is not None]
    where = f" ({path})" if path else ""
    raise EdgeslimError(
        f"model output{where} is a {type(y).__name__}: edgeslim handles tensors and "
        "tuples, lists and dicts of tensors"
    )


def _build(structure: Structure, values: Mapping[str, object]) -> object:
    if isinstance(structure, str):
        if structure not in values:
            raise EdgeslimError(f"no value for output {structure!r}")
        return values[structure]
    if isinstance(structure, dict):
        return {k: _build(s, values) for k, s in structure.items()}
    return tuple(_build(s, values) for s in structure)
