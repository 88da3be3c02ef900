"""Where edgeslim keeps generated data and cached trained models."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """``$EDGESLIM_CACHE`` (default ``~/.cache/edgeslim``) joined with ``parts``, created."""
    root = Path(os.environ.get("EDGESLIM_CACHE") or Path.home() / ".cache" / "edgeslim")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
