"""The calibrator registry: name -> observer class (one file per calibrator)."""

from __future__ import annotations

from edgeslim.core.registry import Registry

OBSERVERS: Registry[type] = Registry("calibrator")
