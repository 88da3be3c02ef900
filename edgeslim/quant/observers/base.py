"""The observer contract: watch tensors, keep statistics in buffers, return a clipping range.

An observer never knows about Conv versus Linear. It sees a tensor (flattened to
``(channels, -1)`` when ``ch_axis`` is set) and answers :meth:`Observer.range` with
``(lo, hi)`` per channel, given the integer grid it will be quantized onto. The
fake-quant module turns the range into scale and zero-point
(:func:`edgeslim.quant.primitives.choose_qparams`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def rows(x: Tensor, ch_axis: int | None) -> Tensor:
    """``x`` as ``(1, -1)`` for per-tensor or ``(C, -1)`` for per-channel statistics."""
    x = x.detach().float()
    if ch_axis is None:
        return x.reshape(1, -1)
    return x.movedim(ch_axis, 0).reshape(x.shape[ch_axis], -1)


def resize_buffers(module: nn.Module, state_dict: dict, prefix: str) -> None:
    """Give ``module``'s own buffers the shapes stored in ``state_dict`` before loading.

    Statistics start empty and take their shape from the first tensor observed, so a
    fresh module must adopt the checkpoint's shapes to load it.
    """
    for name, buf in list(module._buffers.items()):
        saved = state_dict.get(prefix + name)
        if buf is not None and saved is not None and saved.shape != buf.shape:
            module._buffers[name] = torch.empty_like(saved, dtype=buf.dtype)


class Observer(nn.Module):
    """Base class: subclasses implement :meth:`observe` and :meth:`range`."""

    def __init__(self, ch_axis: int | None = None) -> None:
        super().__init__()
        self.ch_axis = ch_axis
        self.register_buffer("min_val", torch.empty(0))
        self.register_buffer("max_val", torch.empty(0))

    def forward(self, x: Tensor) -> Tensor:
        r = rows(x, self.ch_axis)
        lo, hi = r.amin(1), r.amax(1)
        if self.min_val.numel() == 0:
            self.min_val, self.max_val = lo, hi
        else:
            self.min_val = torch.minimum(self.min_val, lo)
            self.max_val = torch.maximum(self.max_val, hi)
        self.observe(r)
        return x

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        resize_buffers(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def observed(self) -> bool:
        return self.min_val.numel() > 0

    def observe(self, r: Tensor) -> None:  # noqa: B027 (optional hook)
        """Update statistics from ``r`` of shape ``(C, N)``."""

    def range(self, qmin: int, qmax: int, symmetric: bool) -> tuple[Tensor, Tensor]:
        """Clipping range ``(lo, hi)`` per channel for the grid ``[qmin, qmax]``."""
        raise NotImplementedError
