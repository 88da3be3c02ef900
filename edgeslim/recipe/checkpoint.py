"""Stage checkpoints: a finished stage is a directory that a rerun loads instead of recomputing.

``stages/NN-name/`` holds the saved model (``model/``, float or fake-quantized),
its deployable ONNX (``model.onnx``: FP32, or INT8 QDQ for a fake-quant model) and
``state.json``, written last: a directory without it is an unfinished stage.
The fingerprint covers the input and every stage up to this one, so editing a
stage's settings reruns that stage and everything after it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from edgeslim.core.atomic import atomic_path, write_text_atomic
from edgeslim.models.saved import load_saved, save_model
from edgeslim.recipe.deploy import export_deployable
from edgeslim.recipe.state import PipelineState

STATE = "state.json"


def fingerprint(head: dict, stages: list[dict]) -> str:
    blob = json.dumps({"head": head, "stages": stages}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def save_stage(stage_dir: Path, state: PipelineState, fp: str) -> PipelineState:
    """Write the stage atomically; give the state its checkpointed ONNX path."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    save_model(state.lm, stage_dir / "model")
    onnx_path = stage_dir / "model.onnx"
    if state.onnx is not None and Path(state.onnx).resolve() != onnx_path.resolve():
        with atomic_path(onnx_path) as tmp:
            shutil.copyfile(state.onnx, tmp)
    elif state.onnx is None:
        export_deployable(state.lm.model, state.lm.require_input(), onnx_path)
    state = PipelineState(state.lm, onnx_path, state.layers, state.notes)
    meta = {"fingerprint": fp, "layers": state.layers, "notes": state.notes}
    write_text_atomic(stage_dir / STATE, json.dumps(meta, indent=2, default=str))
    return state


def load_stage(stage_dir: Path, fp: str) -> PipelineState | None:
    """The finished stage at ``stage_dir`` if its fingerprint matches, else None."""
    f = stage_dir / STATE
    if not f.is_file():
        return None
    try:
        meta = json.loads(f.read_text())
        if meta.get("fingerprint") != fp:
            return None
        lm = load_saved(stage_dir / "model")
    except Exception:  # a damaged checkpoint is recomputed, never trusted
        return None
    return PipelineState(lm, stage_dir / "model.onnx", meta["layers"], meta["notes"])
