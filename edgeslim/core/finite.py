"""NaN and Inf checks: a non-finite number is a clear error, never a silently wrong model.

Every workflow that reads numbers it did not make (weights, input batches,
calibration batches) checks them here first, so the message names the tensor
instead of surfacing later as NaN scales, NaN importance scores or a NaN loss.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError


def first_nonfinite(model: nn.Module) -> str | None:
    """The name of the first floating parameter or buffer holding NaN or Inf, or None."""
    for name, t in model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None


def check_finite_model(model: nn.Module, what: str = "model") -> None:
    """Raise :class:`EdgeslimError` naming the first NaN/Inf weight of ``model``.

    Example:
        >>> check_finite_model(nn.Linear(2, 2))
    """
    name = first_nonfinite(model)
    if name is not None:
        t = model.state_dict()[name]
        bad = int((~torch.isfinite(t)).sum())
        raise EdgeslimError(f"{what}: weight {name!r} holds {bad} NaN or Inf values")


def check_finite_tensor(x: object, what: str) -> None:
    """Raise if ``x`` (a tensor; other inputs such as token dicts pass) holds NaN or Inf."""
    if isinstance(x, torch.Tensor) and x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise EdgeslimError(f"{what} holds {bad} NaN or Inf values")
