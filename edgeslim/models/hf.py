"""Transformers models built offline from a ``config.json`` (the ``hf`` extra).

``hf:path/to/config.json`` builds ``AutoModelForSequenceClassification`` with
random weights; no hub access ever. The model is wrapped so that every edgeslim
command sees ``forward(input_ids) -> logits`` like any other classifier.

transformers imports torchvision whenever it is installed. If that torchvision is
the CUDA-only wheel on CPU torch, the build fails; only then is torchvision
repaired (:func:`edgeslim.models.tv.repair_torchvision`, which warns what it
defined) and the build retried. A working or absent torchvision is never touched.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError


def is_transformers_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("transformers") is not None


class HFClassifier(nn.Module):
    """``input_ids -> logits`` around a transformers sequence classifier (kept as ``.hf``)."""

    def __init__(self, hf_model: nn.Module) -> None:
        super().__init__()
        self.hf = hf_model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=input_ids).logits


def load_config_dict(path: str) -> dict:
    p = Path(path).expanduser()
    if not p.is_file():
        raise EdgeslimError(f"transformers config not found: {path}")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise EdgeslimError(f"{path} is not valid JSON: {e}") from None


def build_hf(config: dict) -> HFClassifier:
    """Build a randomly initialised sequence classifier from a config dict."""
    if not is_transformers_available():
        raise EdgeslimError("hf: models need the 'hf' extra: pip install 'edgeslim[hf]'")
    try:
        return _build(config)
    except (ImportError, RuntimeError) as e:
        from edgeslim.models.tv import is_broken_torchvision, repair_torchvision

        if not is_broken_torchvision(e):
            raise
        # transformers imports torchvision whenever it is installed; only a torchvision
        # that really fails is repaired, and the repair warns what it defined
        repair_torchvision(reason=", and transformers imports torchvision when it is installed")
        return _build(config)


def _build(config: dict) -> HFClassifier:
    import transformers

    cfg = dict(config)
    model_type = cfg.pop("model_type", "bert")
    try:
        hf_config = transformers.AutoConfig.for_model(model_type, **cfg)
    except (ValueError, KeyError) as e:
        raise EdgeslimError(f"bad transformers config: {e}") from None
    # eager attention: plain matmuls that torch.export, pruning and quantization see (setting
    # the attribute on the config after construction is ignored by transformers 5)
    model = transformers.AutoModelForSequenceClassification.from_config(
        hf_config, attn_implementation="eager"
    )
    return HFClassifier(model)
