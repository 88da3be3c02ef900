"""Pre-trained models shipped inside the package, found by the same key as the training cache.

``edgeslim compress`` with no recipe starts from a trained ``resnet18_small_half`` on the
built-in signs. Training it takes many minutes on a 2-core CPU, so the package ships the
result: a saved-model directory under ``edgeslim/models/weights/<key>`` where ``<key>`` is
exactly the cache key that :func:`edgeslim.workflows.train.pretrained_path` computes from
the model, the data (and its generator version) and the training config. A recipe whose
``pretrain`` matches it loads the shipped weights; any other config trains as before.

The weights are stored in fp16 (half the bytes; a model trained in fp32 loses nothing
measurable: ``benchmarks/train_default_model.py`` evaluates the rounded copy it writes, and
regenerates it deterministically on a given CPU).
"""

from __future__ import annotations

from pathlib import Path

from edgeslim.models.saved import is_saved_model

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def shipped_path(key: str) -> Path | None:
    """The shipped saved-model directory for cache key ``key``, or None."""
    path = WEIGHTS_DIR / key
    return path if is_saved_model(path) else None
