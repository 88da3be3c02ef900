"""Calibrators (observers), one per file; importing this package registers them all.

Example:
    >>> from edgeslim.quant.observers import OBSERVERS
    >>> OBSERVERS.names()
    ['aciq', 'aciq_gauss', 'ema_minmax', 'kl', 'minmax', 'mse', 'percentile']
"""

from edgeslim.quant.observers import aciq, kl, minmax, moving_average, mse, percentile  # noqa: F401
from edgeslim.quant.observers.base import Observer
from edgeslim.quant.observers.registry import OBSERVERS

__all__ = ["OBSERVERS", "Observer", "make_observer"]


def make_observer(name: str, ch_axis: int | None = None, **kwargs) -> Observer:
    """Build calibrator ``name`` (see :data:`OBSERVERS`)."""
    return OBSERVERS.get(name)(ch_axis=ch_axis, **kwargs)
