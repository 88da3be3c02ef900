"""Per-epoch training checkpoints: weights as safetensors, the rest loaded with ``weights_only``."""

from __future__ import annotations

import copy
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

from edgeslim.core.atomic import atomic_path
from edgeslim.core.errors import EdgeslimError

WEIGHTS = "last.safetensors"
STATE = "last_state.pt"


def save_checkpoint(ckpt_dir: Path, model: nn.Module, state: dict) -> None:
    """Write weights then state, each atomically; ``state`` holds tensors and plain data only."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if not all(t.is_contiguous() for t in model.state_dict().values()):
        # channels_last training: safetensors stores contiguous tensors only; save a copy
        model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    with atomic_path(ckpt_dir / WEIGHTS) as tmp:
        try:
            safetensors.torch.save_model(model, str(tmp))
        except safetensors.SafetensorError as e:  # e.g. a full disk; the last one stays
            raise EdgeslimError(f"cannot write checkpoint {ckpt_dir / WEIGHTS}: {e}") from None
    with atomic_path(ckpt_dir / STATE) as tmp:
        torch.save(state, tmp)


def load_checkpoint(ckpt_dir: Path, model: nn.Module) -> dict | None:
    """Load weights into ``model`` and return the state dict, or None if there is no checkpoint."""
    if not (ckpt_dir / STATE).is_file() or not (ckpt_dir / WEIGHTS).is_file():
        return None
    try:
        state = torch.load(ckpt_dir / STATE, weights_only=True, map_location="cpu")
        safetensors.torch.load_model(model, str(ckpt_dir / WEIGHTS), strict=True)
    except Exception as e:  # corrupt or mismatched: refuse, never guess
        raise EdgeslimError(f"checkpoint in {ckpt_dir} is corrupt or does not match: {e}") from None
    return state
